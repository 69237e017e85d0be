// Runs a batch of tinygrad CPU kernels in one call, spreading each kernel's slices over a pool of threads.
//
// tinygrad 0.14 renders a big CPU kernel as N independent slices (its `core_id` argument), and then runs them one
// after another from Python, one ctypes call per slice. `run_graph` takes the whole list of kernels a TinyJit
// replays (function address, arguments, number of slices) and runs it here: kernels in order, the slices of each
// kernel claimed by the calling thread and the helpers from one atomic ticket. A kernel starts only after every
// slice of the one before it has finished, so results are the same as running them one by one.
// tinygpt/cpu_graph.py builds this file with the system's C compiler and calls it through ctypes.
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define MAX_ARGS 63      // tinygrad's CPUProgram allows 63 arguments
#define MAX_HELPERS 255
#define CLOSED 0xffffffffu  // the slice part of a ticket while the kernel is being swapped: nothing to claim
#define SPIN_NS 200000   // helpers spin this long for the next kernel before they sleep

typedef struct {
  uint64_t fn;         // the kernel's address
  int64_t nargs;       // arguments passed, each as a 64-bit word (buffer addresses, then integer variables)
  int64_t nslices;     // how many times to call it
  int64_t core_slot;   // which argument receives the slice number, or -1
  uint64_t args[MAX_ARGS];
} kernel_t;

// call_kernel(fn, nargs, a) calls fn with exactly nargs 64-bit arguments a[0..nargs-1], as ctypes does; written out
// by tinygpt/cpu_graph.py, one `case` per argument count.
#include "cpu_graph_calls.h"

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void run_slice(const kernel_t *k, int64_t slice) {
  uint64_t a[MAX_ARGS];
  memcpy(a, k->args, (size_t)k->nargs * sizeof(uint64_t));
  if (k->core_slot >= 0) a[k->core_slot] = (uint64_t)slice;
  call_kernel(k->fn, k->nargs, a);
}

// ---- the pool ----
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;   // guards sleeping helpers and pool start
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t graph_lock = PTHREAD_MUTEX_INITIALIZER;  // one graph at a time
static int helpers = 0;                        // helper threads started in this process
static _Atomic(const kernel_t *) current;      // the kernel whose slices are being handed out
static _Atomic uint64_t ticket;                // (generation << 32) | next slice to claim
static _Atomic int64_t finished;               // slices of the current kernel that have finished
static _Atomic int sleepers;                   // helpers waiting on `wake`
static _Atomic int64_t limit;                  // nslices of the current kernel (read instead of k->nslices)

// Claim and run slices of generation `gen` until none are left; the caller has read `k` for that generation.
static void claim_slices(uint64_t gen, const kernel_t *k) {
  uint64_t t = atomic_load(&ticket);
  uint64_t n = (uint64_t)atomic_load(&limit);  // k is dereferenced only after a successful claim
  while ((t >> 32) == gen && (t & 0xffffffffu) < n) {
    if (atomic_compare_exchange_weak(&ticket, &t, t + 1)) {
      run_slice(k, (int64_t)(t & 0xffffffffu));
      atomic_fetch_add(&finished, 1);
      t = atomic_load(&ticket);
    }
  }
}

static void *helper_main(void *unused) {
  (void)unused;
  uint64_t seen = atomic_load(&ticket) >> 32;
  uint64_t idle_since = now_ns();
  for (unsigned spins = 0;; spins++) {
    uint64_t t = atomic_load(&ticket);
    if ((t >> 32) != seen && (t & 0xffffffffu) != CLOSED) {
      claim_slices(t >> 32, atomic_load(&current));  // `current` is set before the ticket opens
      seen = t >> 32;
      idle_since = now_ns();
      continue;
    }
    cpu_relax();
    if ((spins & 255) || now_ns() - idle_since < SPIN_NS) continue;
    pthread_mutex_lock(&lock);
    atomic_fetch_add(&sleepers, 1);
    while (atomic_load(&ticket) == t) pthread_cond_wait(&wake, &lock);
    atomic_fetch_sub(&sleepers, 1);
    pthread_mutex_unlock(&lock);
    idle_since = now_ns();
  }
  return NULL;
}

// A forked child has none of the parent's helper threads: start afresh.
static void after_fork_in_child(void) {
  helpers = 0;
  atomic_store(&sleepers, 0);
  pthread_mutex_init(&lock, NULL);
  pthread_mutex_init(&graph_lock, NULL);
  pthread_cond_init(&wake, NULL);
}

static void start_helpers(int wanted) {
  static int atfork_registered = 0;
  if (!atfork_registered) atfork_registered = !pthread_atfork(NULL, NULL, after_fork_in_child);
  if (wanted > MAX_HELPERS) wanted = MAX_HELPERS;
  while (helpers < wanted) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, helper_main, NULL)) break;  // fewer helpers is slower, not wrong
    pthread_detach(thread);
    helpers++;
  }
}

static void run_sliced(const kernel_t *k) {
  uint64_t gen = ((atomic_load(&ticket) >> 32) + 1) & 0xffffffffu;  // wraps after 2^32 kernels
  atomic_store(&finished, 0);
  atomic_store(&ticket, (gen << 32) | CLOSED);  // late helpers of the last kernel must not read the new one
  atomic_store(&current, k);
  atomic_store(&limit, k->nslices);
  atomic_store(&ticket, gen << 32);
  if (atomic_load(&sleepers) > 0) {
    pthread_mutex_lock(&lock);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
  }
  claim_slices(gen, k);
  while (atomic_load(&finished) < k->nslices) cpu_relax();
  atomic_store(&ticket, (gen << 32) | CLOSED);  // nothing left to claim once run_graph returns
}

// Run kernels[0..n-1] in order with up to `threads` threads (the caller included). Returns 0.
int64_t run_graph(const kernel_t *kernels, int64_t n, int64_t threads) {
  pthread_mutex_lock(&graph_lock);
  if (threads - 1 > helpers) start_helpers((int)(threads - 1));
  for (int64_t i = 0; i < n; i++) {
    const kernel_t *k = &kernels[i];
    if (k->nslices > 1 && k->core_slot >= 0 && helpers > 0) run_sliced(k);
    else for (int64_t s = 0; s < k->nslices; s++) run_slice(k, s);
  }
  pthread_mutex_unlock(&graph_lock);
  return 0;
}
