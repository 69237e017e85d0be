"""Training speed: tinygpt (tinygrad) vs the same GPT in PyTorch, measured in the same run, interleaved.

    .venv/bin/python benchmarks/train_bench.py                 # both configs, 20 timed steps each
    .venv/bin/python benchmarks/train_bench.py --config A --steps 30
    BEAM=1 .venv/bin/python benchmarks/train_bench.py --config A

Each side runs in its own worker process (so peak memory is per side, and flags like BEAM only reach tinygrad);
the parent asks them for one step at a time, alternately, so both see the same machine load. Reported: median
step time, tokens/s, first-step time (compile included), peak RSS, and ours/PyTorch tokens/s ratio.
Results are written to benchmarks/results/train_bench.json (atomically).
"""
import argparse, json, os, platform, statistics, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIGS = {  # name: (vocab, n_layer, n_head, n_embd, block_size, batch)
    "A": dict(vocab_size=1000, n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12),
    "B": dict(vocab_size=1000, n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=8),
}


# ----------------------------------------------------------------------------------------------- worker side
def _peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _children_cpu() -> float:
    """CPU seconds of finished child processes (tinygrad's clang compiles and BEAM workers)."""
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def tinygrad_worker(cfg: dict, seed: int):
    """Return (step_fn, source): our model + one TinyJit training step.

    With tinygpt present (default) this is tinygpt.train.make_train_step itself (two AdamW groups, gradient
    clipping by global norm 1.0, learning rate as a tensor input); without make_train_step, a mirror of it.
    BENCH_MODEL=standalone uses benchmarks/tinygrad_gpt.py and one plain AdamW instead.
    """
    import numpy as np
    from tinygrad import Tensor, TinyJit, nn, helpers
    Tensor.manual_seed(seed)
    training = (lambda: helpers.Context(TRAINING=1)) if hasattr(helpers, "TRAINING") else Tensor.train
    B, T, V = cfg["batch_size"], cfg["block_size"], cfg["vocab_size"]
    model, prod_step = None, None
    if os.environ.get("BENCH_MODEL", "tinygpt") == "tinygpt":
        try:
            from tinygpt.config import GPTConfig
            from tinygpt.model import GPT
            from tinygpt.optim import make_optimizer, set_lr
        except ImportError:
            pass
        else:
            import tinygpt
            model = GPT(GPTConfig(**{k: v for k, v in cfg.items() if k != "batch_size"}))
            params = model.state_dict()
            opt = make_optimizer(params, 1e-3)
            Tensor.realize(*params.values())  # realize before capture, or every replay recomputes the init
            plist = list(params.values())
            source = f"tinygpt.model.GPT + tinygpt.optim ({Path(tinygpt.__file__).parent})"
            try:  # the production step itself, when tinygpt.train exposes it
                from tinygpt.train import TrainArgs, make_train_step
                from tinygrad import Device
                prod_step = make_train_step(model, opt, TrainArgs(batch_size=B, accum=1, grad_clip=1.0),
                                            Device.DEFAULT)
                source = f"tinygpt.train.make_train_step ({Path(tinygpt.__file__).parent})"
            except ImportError:
                prod_step = None

            @TinyJit
            def step(x, y, lr):
                with training():
                    set_lr(opt, lr)
                    opt.zero_grad()
                    loss = model(x).sparse_categorical_crossentropy(y)
                    loss.backward()
                    norm = Tensor.stack(*[(p.grad * p.grad).sum() for p in plist]).sum().sqrt()
                    scale = (1.0 / (norm + 1e-6)).minimum(1.0)
                    for p in plist:
                        p.grad = p.grad * scale
                    Tensor.realize(loss, norm, *opt.schedule_step())
                    return loss
    if model is None:
        sys.path.insert(0, str(HERE))
        from tinygrad_gpt import GPT
        model = GPT(cfg["vocab_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["block_size"])
        params = nn.state.get_parameters(model)
        Tensor.realize(*params)
        opt = nn.optim.AdamW(params, lr=1e-3, b1=0.9, b2=0.95, weight_decay=0.1)
        source = "benchmarks/tinygrad_gpt.py (standalone copy), plain AdamW"

        @TinyJit
        def step(x, y, lr):
            with training():
                opt.zero_grad()
                loss = model(x).sparse_categorical_crossentropy(y)
                loss.backward()
                opt.step()
                return loss.realize()

    rng = np.random.default_rng(seed)
    lr = Tensor([1e-3]).realize()
    production = prod_step is not None

    feed_numpy = [production]  # tinygpt's step takes numpy batches (as its training loop gives them) since session 3

    def run():
        xn, yn = (rng.integers(0, V, (1, B, T), dtype=np.int32) for _ in range(2))
        if feed_numpy[0]:
            try:
                from tinygpt.jit_inputs import to_numpy
                return float(to_numpy(prod_step(xn, yn, 1e-3)[0]))
            except Exception:  # an older tinygpt (BENCH_TINYGPT_PATH): Tensors only
                feed_numpy[0] = False
        x, y = Tensor(xn), Tensor(yn)
        if production:  # make_train_step takes (accum, B, T) batches and returns (loss, grad norm)
            return prod_step(x, y, lr)[0].item()
        return step(x[0], y[0], lr).item()
    return run, source


def torch_worker(cfg: dict, seed: int):
    import numpy as np
    import torch
    if os.environ.get("BENCH_TORCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_TORCH_THREADS"]))
    sys.path.insert(0, str(HERE))
    from torch_gpt import TorchGPT, make_torch_step
    torch.manual_seed(seed)
    model = TorchGPT(cfg["vocab_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["block_size"])
    step = make_torch_step(model)
    rng = np.random.default_rng(seed)
    B, T, V = cfg["batch_size"], cfg["block_size"], cfg["vocab_size"]

    def run():
        x = torch.from_numpy(rng.integers(0, V, (B, T), dtype=np.int64))
        y = torch.from_numpy(rng.integers(0, V, (B, T), dtype=np.int64))
        return step(x, y)
    return run, f"torch {torch.__version__} ({torch.get_num_threads()} threads)"


def worker_main(side: str, cfg: dict, seed: int):
    """Line protocol on stdin/stdout: 'step' -> one JSON line {seconds, loss}; 'peak' -> peak RSS; EOF ends."""
    sys.path.insert(0, os.environ.get("BENCH_TINYGPT_PATH", str(ROOT)))  # a patched tinygpt copy to compare
    run, source = (tinygrad_worker if side == "tinygrad" else torch_worker)(cfg, seed)
    print(json.dumps({"ready": source}), flush=True)
    for line in sys.stdin:
        if line.strip() == "step":
            t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
            loss = run()
            print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                              "children_cpu_seconds": _children_cpu() - k0, "loss": loss}), flush=True)
        elif line.strip() == "peak":
            print(json.dumps({"peak_rss_mb": _peak_rss_mb()}), flush=True)


# ----------------------------------------------------------------------------------------------- parent side
class Worker:
    def __init__(self, side: str, cfg: dict, seed: int, env: dict, python: str = sys.executable):
        self.side = side
        self.proc = subprocess.Popen([python, __file__, "--worker", side, "--cfg", json.dumps(cfg), "--seed", str(seed)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.source = self._read()["ready"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.side} worker died (rc={self.proc.wait()})")
        return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def bench_config(name: str, cfg: dict, steps: int, warmup: int, seed: int, sides: list[str],
                 tinygrad_python: str = sys.executable, variants: dict | None = None) -> dict:
    """Time every side on config `cfg`. `variants` maps extra side names to env overrides for a tinygrad worker
    (e.g. {"beam": {"BEAM": "1"}}), so flags and patched model copies are compared in the same run."""
    variants = variants or {}
    tokens = cfg["batch_size"] * cfg["block_size"]
    env = dict(os.environ)
    torch_env = {k: v for k, v in env.items() if k not in ("BEAM", "DEBUG")}
    res = {"config": name, **cfg, "tokens_per_step": tokens}
    workers = {}
    for side in sides:  # start-up + first step of one side at a time (compiles are CPU-heavy)
        t0 = time.perf_counter()
        if side in variants:
            w = workers[side] = Worker("tinygrad", cfg, seed, {**env, **variants[side]}, tinygrad_python)
        elif side == "torch1":  # PyTorch on one thread: the stable reference on a loaded machine
            w = workers[side] = Worker("torch", cfg, seed, {**torch_env, "BENCH_TORCH_THREADS": "1"})
        elif side == "tinygrad":
            w = workers[side] = Worker(side, cfg, seed, env, tinygrad_python)
        else:
            w = workers[side] = Worker(side, cfg, seed, torch_env)
        startup = time.perf_counter() - t0
        first = w.ask("step")
        res[side] = {"source": w.source, "startup_s": round(startup, 3), "first_step_s": round(first["seconds"], 3),
                     "first_step_cpu_s": round(first["cpu_seconds"] + first["children_cpu_seconds"], 3),
                     "first_step_compile_cpu_s": round(first["children_cpu_seconds"], 3)}
        for _ in range(warmup):
            w.ask("step")
    times = {s: [] for s in sides}
    cpu_times = {s: [] for s in sides}
    losses = {s: None for s in sides}
    for i in range(steps):
        for side in (sides if i % 2 == 0 else sides[::-1]):  # alternate who goes first
            r = workers[side].ask("step")
            times[side].append(r["seconds"])
            cpu_times[side].append(r["cpu_seconds"])
            losses[side] = r["loss"]
    for side in sides:
        med = statistics.median(times[side])
        res[side].update(step_ms=round(med * 1000, 2), tokens_per_s=round(tokens / med, 1),
                         step_ms_min=round(min(times[side]) * 1000, 2),
                         cpu_ms=round(statistics.median(cpu_times[side]) * 1000, 2), last_loss=round(losses[side], 4),
                         peak_rss_mb=round(workers[side].ask("peak")["peak_rss_mb"], 1))
        workers[side].close()
    if "tinygrad" in res and "torch" in res:
        res["ratio_tokens_per_s"] = round(res["tinygrad"]["tokens_per_s"] / res["torch"]["tokens_per_s"], 3)
    for side in variants:
        if side in res and "torch" in res:
            res[f"ratio_{side}_tokens_per_s"] = round(res[side]["tokens_per_s"] / res["torch"]["tokens_per_s"], 3)
    for side in ("tinygrad", *variants):  # CPU time per step is far less sensitive to other users' load
        if side in res and "torch1" in res:
            res[f"ratio_{side}_vs_torch1_cpu"] = round(res["torch1"]["cpu_ms"] / res[side]["cpu_ms"], 3)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per side (after warm-up)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps after the first (TinyJit captures on step 2)")
    ap.add_argument("--batch-size", type=int, help="override the config's batch size")
    ap.add_argument("--vocab", type=int, help="override the config's vocabulary size")
    ap.add_argument("--sides", default="tinygrad,torch,torch1",
                    help="tinygrad, torch (its default threads), torch1 (one thread), and --variant names")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tinygrad-python", default=sys.executable,
                    help="python of the venv whose tinygrad to time (e.g. one with tinygrad 0.13.0)")
    ap.add_argument("--out", default=str(HERE / "results" / "train_bench.json"))
    ap.add_argument("--label", default="", help="free text stored with the results (e.g. the flags used)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:K=V,K=V",
                    help="an extra tinygrad side with these environment overrides, e.g. beam:BEAM=1 (add NAME to --sides)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--cfg", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(args.worker, json.loads(args.cfg), args.seed)

    names = list(CONFIGS) if args.config == "all" else [args.config]
    variants = {}
    for spec in args.variant:
        vname, _, kvs = spec.partition(":")
        variants[vname] = dict(kv.split("=", 1) for kv in kvs.split(",") if kv)
    sides = args.sides.split(",")
    for vname in variants:
        if vname not in sides:
            sides.append(vname)
    args.sides = ",".join(sides)
    flags = {k: os.environ[k] for k in ("DEV", "BEAM", "NOOPT", "CPU_LLVM", "CACHELEVEL", "BENCH_MODEL") if k in os.environ}
    tg_version = subprocess.run([args.tinygrad_python, "-c", "import tinygrad.helpers, importlib.metadata as m; print(m.version('tinygrad'))"],
                                capture_output=True, text=True).stdout.strip()
    meta = {"label": args.label, "variants": variants, "tinygrad": tg_version, "flags": flags, "load_avg_start": os.getloadavg(), "cpus": os.cpu_count(),
            "machine": platform.machine(), "python": platform.python_version()}
    results = []
    print(f"tinygrad {tg_version}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus; flags {flags}")
    print(f"{'cfg':>3} {'side':>8} {'step ms':>9} {'cpu ms':>9} {'tok/s':>9} {'first s':>8} {'1st cpu':>8} {'peak MB':>8}  source")
    for name in names:
        cfg = dict(CONFIGS[name])
        if args.batch_size: cfg["batch_size"] = args.batch_size
        if args.vocab: cfg["vocab_size"] = args.vocab
        r = bench_config(name, cfg, args.steps, args.warmup, args.seed, args.sides.split(","), args.tinygrad_python,
                         variants)
        for side in args.sides.split(","):
            s = r[side]
            print(f"{name:>3} {side:>8} {s['step_ms']:>9.1f} {s['cpu_ms']:>9.1f} {s['tokens_per_s']:>9.0f} {s['first_step_s']:>8.2f} {s['first_step_cpu_s']:>8.1f} "
                  f"{s['peak_rss_mb']:>8.0f}  {s['source']}")
        for key, val in r.items():
            if key.startswith("ratio"):
                print(f"{name:>3}  {key} = {val:.3f}")
        results.append(r)
    meta["load_avg_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
