"""Generation speed: tinygpt with and without its KV cache vs nanoGPT-style PyTorch, in the same run.

    .venv/bin/python benchmarks/generate_bench.py                  # both configs, 256 new tokens, 32-token prompt
    .venv/bin/python benchmarks/generate_bench.py --config A --rounds 3

Three sides, each in its own worker process, asked in turn (round-robin, so all see the same load):
- `cache`:   ours, tinygpt.generation's CachedForward: `model.forward_cached` under TinyJit with a symbolic start
             position (decode, T=1) and a padded prefill; the window shifts by block_size/4 when full;
- `nocache`: ours, tinygpt.generation's FullForward: the whole window, padded to block_size, under TinyJit;
             (BENCH_MODEL=standalone: the benchmark's own loops, the no-cache one without JIT);
- `torch`:   the same architecture in PyTorch (benchmarks/torch_gpt.py), nanoGPT's generate loop (`torch1`: on
             one thread, the steadier reference on a shared machine).
All decode greedily (argmax) from random weights: this measures speed, not text. Round 1 includes compilation
("cold"); later rounds are warm. Reported: tokens/s over the 256 tokens, first-token time, peak RSS.
Results go to benchmarks/results/generate_bench.json.
"""
import argparse, json, os, platform, statistics, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIGS = {
    "A": dict(vocab_size=1000, n_layer=4, n_head=4, n_embd=128, block_size=64),
    "B": dict(vocab_size=1000, n_layer=6, n_head=6, n_embd=384, block_size=256),
}


def _peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_tinygrad_model(cfg: dict, seed: int):
    """tinygpt.model.GPT when it exists (and BENCH_MODEL != standalone), else the standalone benchmark copy."""
    from tinygrad import Tensor, nn
    Tensor.manual_seed(seed)
    model, source = None, "benchmarks/tinygrad_gpt.py (standalone copy)"
    if os.environ.get("BENCH_MODEL", "tinygpt") == "tinygpt":
        try:
            from tinygpt.config import GPTConfig
            from tinygpt.model import GPT
            model, source = GPT(GPTConfig(**cfg)), "tinygpt.model.GPT"
        except ImportError:
            pass
    if model is None:
        sys.path.insert(0, str(HERE))
        from tinygrad_gpt import GPT
        model = GPT(cfg["vocab_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["block_size"])
    Tensor.realize(*nn.state.get_parameters(model))
    return model, source


def tinygpt_forward_side(cfg: dict, seed: int, use_cache: bool):
    """tinygpt.generation's own forward (`forward_for(model, use_cache).next_logits(window)`), greedy, with its
    default window shift (a quarter of block_size) once the context is full."""
    import numpy as np
    from tinygpt.generation import context_start, forward_for
    model, source = build_tinygrad_model(cfg, seed)
    block, shift = cfg["block_size"], max(1, cfg["block_size"] // 4)

    def generate(prompt: list[int], n_new: int):
        fwd = forward_for(model, use_cache)
        tokens, first = list(prompt), None
        t0 = time.perf_counter()
        for _ in range(n_new):
            window = tokens[context_start(len(tokens), block, shift):]
            tokens.append(int(np.argmax(fwd.next_logits(window))))
            first = first if first is not None else time.perf_counter() - t0
        return tokens, first, time.perf_counter() - t0
    kind = "CachedForward (KV cache)" if use_cache else "FullForward (padded, TinyJit)"
    return generate, f"{source} + tinygpt.generation.{kind}"


def _use_tinygpt_generate() -> bool:
    if os.environ.get("BENCH_MODEL", "tinygpt") != "tinygpt":
        return False
    try:
        import tinygpt.generation  # noqa: F401
        return True
    except ImportError:
        return False


def tinygrad_cache_side(cfg: dict, seed: int):
    if _use_tinygpt_generate():
        return tinygpt_forward_side(cfg, seed, use_cache=True)
    from tinygrad import Tensor, TinyJit, UOp
    model, source = build_tinygrad_model(cfg, seed)
    block = cfg["block_size"]
    v_pos = UOp.variable("start_pos", 1, block - 1)

    @TinyJit
    def decode(tok: Tensor, start_pos) -> Tensor:
        return model.forward_cached(tok, start_pos)[:, -1, :].argmax(-1).realize()

    prefills = {}  # one TinyJit per prompt length (start_pos 0)

    def prefill(idx: list[int]) -> int:
        jit = prefills.setdefault(len(idx), TinyJit(lambda t: model.forward_cached(t, 0)[:, -1, :].argmax(-1).realize()))
        return jit(Tensor([idx], dtype="int32")).item()

    def generate(prompt: list[int], n_new: int):
        model.reset_cache(1)
        tokens = list(prompt)
        t0 = time.perf_counter()
        nxt = prefill(tokens[-block:])
        first = time.perf_counter() - t0
        pos = min(len(tokens), block)  # tokens now in the cache
        tokens.append(nxt)
        while len(tokens) - len(prompt) < n_new:
            if pos == block:  # cache full: keep the last block/2 tokens (slide the window), re-prefill them
                keep = tokens[-(block // 2):]
                model.reset_cache(1)
                nxt = prefill(keep)
                pos = len(keep)
            else:
                nxt = decode(Tensor([[tokens[-1]]], dtype="int32"), v_pos.bind(pos)).item()
                pos += 1
            tokens.append(nxt)
        return tokens, first, time.perf_counter() - t0
    return generate, source + " forward_cached + TinyJit"


def tinygrad_nocache_side(cfg: dict, seed: int):
    if _use_tinygpt_generate():
        return tinygpt_forward_side(cfg, seed, use_cache=False)
    from tinygrad import Tensor
    model, source = build_tinygrad_model(cfg, seed)
    block = cfg["block_size"]

    def generate(prompt: list[int], n_new: int):
        tokens = list(prompt)
        t0, first = time.perf_counter(), None
        for _ in range(n_new):
            ctx = tokens[-block:]
            tokens.append(model(Tensor([ctx], dtype="int32"))[:, -1, :].argmax(-1).item())
            first = first if first is not None else time.perf_counter() - t0
        return tokens, first, time.perf_counter() - t0
    return generate, source + " full forward per token (no JIT)"


def torch_side(cfg: dict, seed: int):
    import torch
    if os.environ.get("BENCH_TORCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_TORCH_THREADS"]))
    sys.path.insert(0, str(HERE))
    from torch_gpt import TorchGPT
    torch.manual_seed(seed)
    model = TorchGPT(cfg["vocab_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["block_size"]).eval()

    def generate(prompt: list[int], n_new: int):
        idx = torch.tensor([prompt])
        t0 = time.perf_counter()
        idx = model.generate(idx, 1)
        first = time.perf_counter() - t0
        idx = model.generate(idx, n_new - 1)
        return idx[0].tolist(), first, time.perf_counter() - t0
    return generate, f"torch {torch.__version__} ({torch.get_num_threads()} threads) nanoGPT generate"


SIDES = {"cache": tinygrad_cache_side, "nocache": tinygrad_nocache_side, "torch": torch_side, "torch1": torch_side}


def worker_main(side: str, cfg: dict, seed: int, prompt_len: int, n_new: int):
    sys.path.insert(0, os.environ.get("BENCH_TINYGPT_PATH", str(ROOT)))  # a patched tinygpt copy to compare
    generate, source = SIDES[side](cfg, seed)
    import numpy as np
    prompt = np.random.default_rng(seed).integers(0, cfg["vocab_size"], prompt_len).tolist()
    print(json.dumps({"ready": source}), flush=True)
    for line in sys.stdin:
        if line.strip() == "gen":
            tokens, first, total = generate(prompt, n_new)
            print(json.dumps({"first_token_s": first, "total_s": total, "n_new": len(tokens) - len(prompt),
                              "peak_rss_mb": _peak_rss_mb()}), flush=True)


def run_config(name, cfg, sides, rounds, seed, prompt_len, n_new):
    procs, res = {}, {"config": name, **cfg, "prompt_tokens": prompt_len, "new_tokens": n_new}
    runs = {s: [] for s in sides}
    torch_env = {k: v for k, v in os.environ.items() if k not in ("BEAM", "DEBUG")}
    for side in sides:
        procs[side] = subprocess.Popen(
            [sys.executable, __file__, "--worker", side, "--cfg", json.dumps(cfg), "--seed", str(seed),
             "--prompt", str(prompt_len), "--new", str(n_new)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, cwd=ROOT, env={"torch": torch_env, "torch1": {**torch_env, "BENCH_TORCH_THREADS": "1"}}.get(
                side, dict(os.environ)))
        res[side] = {"source": json.loads(procs[side].stdout.readline())["ready"]}
    for _ in range(rounds):
        for side in sides:
            procs[side].stdin.write("gen\n")
            procs[side].stdin.flush()
            line = procs[side].stdout.readline()
            if not line:
                raise SystemExit(f"{side} worker died")
            runs[side].append(json.loads(line))
    for side in sides:
        procs[side].stdin.close()
        procs[side].wait()
        cold, warm = runs[side][0], runs[side][1:] or runs[side][:1]
        total = statistics.median(r["total_s"] for r in warm)
        res[side].update(tokens_per_s=round(n_new / total, 2), first_token_s=round(statistics.median(r["first_token_s"] for r in warm), 4),
                         cold_tokens_per_s=round(n_new / cold["total_s"], 2), cold_first_token_s=round(cold["first_token_s"], 3),
                         peak_rss_mb=round(max(r["peak_rss_mb"] for r in runs[side]), 1))
    for side in ("cache", "nocache"):
        for ref in ("torch", "torch1"):
            if side in res and ref in res:
                res[f"ratio_{side}_vs_{ref}"] = round(res[side]["tokens_per_s"] / res[ref]["tokens_per_s"], 3)
    if "cache" in res and "nocache" in res:
        res["ratio_cache_vs_nocache"] = round(res["cache"]["tokens_per_s"] / res["nocache"]["tokens_per_s"], 2)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    ap.add_argument("--sides", default="cache,nocache,torch,torch1",
                    help="cache, nocache (ours), torch (its default threads), torch1 (one thread)")
    ap.add_argument("--rounds", type=int, default=2, help="generations per side (the first one is cold)")
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "results" / "generate_bench.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--cfg", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(args.worker, json.loads(args.cfg), args.seed, args.prompt, args.new)
    flags = {k: os.environ[k] for k in ("DEV", "BEAM", "BENCH_MODEL", "CACHEDB") if k in os.environ}
    meta = {"flags": flags, "load_avg_start": os.getloadavg(), "cpus": os.cpu_count(), "machine": platform.machine()}
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus; flags {flags}")
    print(f"{'cfg':>3} {'side':>8} {'tok/s':>8} {'first s':>8} {'cold tok/s':>10} {'cold first':>10} {'peak MB':>8}  source")
    results = []
    for name in (list(CONFIGS) if args.config == "all" else [args.config]):
        r = run_config(name, CONFIGS[name], args.sides.split(","), args.rounds, args.seed, args.prompt, args.new)
        for side in args.sides.split(","):
            s = r[side]
            print(f"{name:>3} {side:>8} {s['tokens_per_s']:>8.1f} {s['first_token_s']:>8.3f} {s['cold_tokens_per_s']:>10.1f} "
                  f"{s['cold_first_token_s']:>10.2f} {s['peak_rss_mb']:>8.0f}  {s['source']}")
        print("    " + ", ".join(f"{k} = {v}" for k, v in r.items() if k.startswith("ratio")))
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
