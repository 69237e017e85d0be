"""Benchmark `bpe` against rustbpe, Hugging Face `tokenizers`, tiktoken and a minbpe-style naive trainer.

    .venv/bin/python benchmarks/bpe_bench.py            # full run on ../shared/corpora (several minutes)
    .venv/bin/python benchmarks/bpe_bench.py --quick    # smoke run: small slices, one repeat

Prints one table (times are medians of --repeats runs; ratios come from the same run) and writes
benchmarks/results/bpe_bench.json with the machine it ran on. Each training run happens in a fresh subprocess,
so its peak memory (ru_maxrss) is its own. Training feeds every trainer the same text: ours gets the whole
corpus, rustbpe and HF get it cut into pieces at line starts that the GPT-4 pattern always splits at anyway
(so they can use their threads), which leaves the chunk counts, and hence the merges, unchanged.
"""
import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

CORPORA = ("tinyshakespeare.txt", "shuihu.txt")
TRAINERS = ("rustbpe", "hf", "ours")


# ------------------------------------------------------------------------------------------ train (child)
def pieces_at_line_starts(text: str, size: int = 1 << 16) -> list[str]:
    """Cut `text` into ~`size`-character pieces, each ending with "\\n" followed by a letter.

    The GPT-4 pattern always ends a chunk at such a newline, so training on the pieces as separate documents
    counts exactly the chunks of the whole text.
    """
    import regex
    pieces, start = [], 0
    for m in regex.finditer(r"\n(?=\p{L})", text):
        if m.end() - start >= size:
            pieces.append(text[start:m.end()])
            start = m.end()
    pieces.append(text[start:])
    return [p for p in pieces if p]


def train_child(impl: str, corpus: str, vocab_size: int, slice_bytes: int) -> dict:
    """Train one tokenizer in this (fresh) process; return its time, peak memory and a hash of its ranks."""
    from bpe.patterns import PATTERNS
    pattern = PATTERNS["gpt4"]
    if impl == "rustbpe":
        import rustbpe
    elif impl == "hf":
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    elif impl == "ours":
        import bpe.tokenizer  # noqa: F401  (imported before the clock starts, like the others)
    elif impl == "naive":
        import minbpe_naive
    text = read_corpus(corpus, slice_bytes)
    pieces = pieces_at_line_starts(text)
    base_rss = peak_rss_mb()
    cpu_start = time.process_time()  # all threads of this process
    start = time.perf_counter()
    if impl == "rustbpe":
        tok = rustbpe.Tokenizer()
        tok.train_from_iterator(iter(pieces), vocab_size, pattern=pattern)
        seconds = time.perf_counter() - start
        ranked = [b for b, _ in sorted(tok.get_mergeable_ranks(), key=lambda kv: kv[1])][256:]
    elif impl == "hf":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), "isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(pieces, trainer)
        seconds = time.perf_counter() - start
        ranked = None  # HF breaks ties its own way: its merges are not compared
    elif impl == "ours":
        tok = train_ours(text, vocab_size)
        seconds = time.perf_counter() - start
        ranked = [tok.token_bytes(i) for i in range(256, tok.vocab_size)]
    else:
        merges = minbpe_naive.train(text, vocab_size)
        seconds = time.perf_counter() - start
        vocab = [bytes([i]) for i in range(256)]
        for left, right in merges:
            vocab.append(vocab[left] + vocab[right])
        ranked = vocab[256:]
    result = {"impl": impl, "seconds": seconds, "cpu_seconds": time.process_time() - cpu_start,
              "peak_mb": peak_rss_mb(), "base_mb": base_rss,
              "bytes": len(text.encode("utf-8"))}
    if ranked is not None:
        result["merges"] = len(ranked)
        result["ranks_sha256"] = hashlib.sha256(b"\0".join(b.hex().encode() for b in ranked)).hexdigest()
    return result


def train_ours(text: str, vocab_size: int):
    """Our Tokenizer.train, step by step, so that like rustbpe it stops early when the corpus runs out of pairs
    (Tokenizer.train refuses a vocab_size the corpus cannot reach)."""
    from bpe.pretokenize import count_chunks
    from bpe.tokenizer import Tokenizer
    from bpe.train import train_merges
    from bpe.patterns import PATTERNS
    merges = train_merges(count_chunks([text], PATTERNS["gpt4"]), vocab_size - 256)
    return Tokenizer(merges, pattern="gpt4")


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    On Linux, VmHWM: ru_maxrss survives exec, so a child started by a big parent would report the parent's peak.
    Elsewhere ru_maxrss (KB on Linux, bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


def read_corpus(path, slice_bytes: int = 0) -> str:
    data = Path(path).read_bytes()
    if slice_bytes:
        data = data[:slice_bytes]
    return data.decode("utf-8", errors="ignore")  # a slice may cut the last character


def train_once(impl, corpus, vocab_size, slice_bytes) -> dict:
    """One training run in a fresh subprocess."""
    cmd = [sys.executable, __file__, "--child", impl, str(corpus), str(vocab_size), str(slice_bytes)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{impl} training failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_train(impls, corpus, vocab_size, slice_bytes, repeats) -> dict:
    """Per trainer: median time and max peak memory of `repeats` fresh-process runs.

    The trainers take turns (A B C A B C ...), so a burst of load from elsewhere hits them alike.
    """
    runs = {impl: [] for impl in impls}
    for _ in range(repeats):
        for impl in impls:
            runs[impl].append(train_once(impl, corpus, vocab_size, slice_bytes))
    results = {}
    for impl, rs in runs.items():
        result = dict(rs[-1])
        result["seconds"] = statistics.median(r["seconds"] for r in rs)
        result["cpu_seconds"] = statistics.median(r["cpu_seconds"] for r in rs)
        result["all_seconds"] = [r["seconds"] for r in rs]
        result["peak_mb"] = max(r["peak_mb"] for r in rs)
        results[impl] = result
    return results


# --------------------------------------------------------------------------------------------- encoding
def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_encoding(name, text, ours_factory, reference, repeats) -> dict:
    """encode_ordinary, decode and encode_batch MB/s of ours vs tiktoken on `text`; ids must be identical.

    Ours and tiktoken take turns in every repeat (medians are taken after), so load from elsewhere hits both.
    Each timed encode of ours uses a freshly built tokenizer: a chunk cache warmed by the previous run would
    flatter it (tiktoken has no such cache); the warm figure (the same text again, all cache hits) is kept too.
    """
    mb = len(text.encode("utf-8")) / 1e6
    ours = ours_factory()
    ours_ids = ours.encode_ordinary(text)
    ref_ids = reference.encode_ordinary(text)
    docs = text.splitlines(keepends=True)
    times = {key: [] for key in ("enc", "warm", "ref_enc", "dec", "ref_dec", "batch", "ref_batch")}
    for _ in range(repeats):
        tok = ours_factory()
        times["enc"].append(timed(lambda: tok.encode_ordinary(text)))
        times["ref_enc"].append(timed(lambda: reference.encode_ordinary(text)))
        times["warm"].append(timed(lambda: tok.encode_ordinary(text)))
        times["dec"].append(timed(lambda: ours.decode(ours_ids)))
        times["ref_dec"].append(timed(lambda: reference.decode(ref_ids)))
        batch_tok = ours_factory()
        times["batch"].append(timed(lambda: batch_tok.encode_batch(docs)))
        times["ref_batch"].append(timed(lambda: reference.encode_ordinary_batch(docs)))
    mbs = {key: mb / statistics.median(ts) for key, ts in times.items()}
    return {"name": name, "mb": mb, "tokens": len(ours_ids), "ids_identical": ours_ids == ref_ids,
            "encode_mbs": mbs["enc"], "warm_encode_mbs": mbs["warm"], "tiktoken_encode_mbs": mbs["ref_enc"],
            "decode_mbs": mbs["dec"], "tiktoken_decode_mbs": mbs["ref_dec"],
            "batch_mbs": mbs["batch"], "tiktoken_batch_mbs": mbs["ref_batch"], "batch_docs": len(docs)}


def encoding_suite(corpus: Path, text: str, corpora_dir: Path, vocab: int, repeats: int, tmp: Path) -> list[dict]:
    import regex
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    from bpe.tokenizer import Tokenizer
    from bpe.patterns import PATTERNS
    results = []
    mb = len(text.encode("utf-8")) / 1e6
    floor = statistics.median(timed(lambda: regex.findall(PATTERNS["gpt4"], text)) for _ in range(repeats))
    results.append({"name": "regex.findall floor", "encode_mbs": mb / floor})

    cl100k = corpora_dir / "cl100k_base.tiktoken"
    if cl100k.is_file():
        ref = tiktoken.Encoding("cl100k_bench", pat_str=PATTERNS["cl100k"],
                                mergeable_ranks=load_tiktoken_bpe(str(cl100k)), special_tokens={})
        loaded = Tokenizer.from_tiktoken(cl100k, pattern="cl100k", special_tokens={})
        results.append(bench_encoding("cl100k", text, lambda: copy_tokenizer(loaded), ref, repeats))

    trained = train_ours(text, vocab)
    ranks = tmp / f"{corpus.stem}-{vocab}.tiktoken"
    trained.save_tiktoken(ranks)
    ref = tiktoken.Encoding(f"{corpus.stem}_{vocab}", pat_str=trained.pattern,
                            mergeable_ranks=load_tiktoken_bpe(str(ranks)), special_tokens={})
    results.append(bench_encoding(f"{trained.vocab_size} trained", text, lambda: copy_tokenizer(trained), ref, repeats))
    return results


def copy_tokenizer(tok):
    """A new tokenizer equal to `tok`, with none of the chunk cache that `tok` has warmed, its tables built
    (`prepare`) before the clock starts, as tiktoken builds its own in its constructor."""
    from bpe.tokenizer import Tokenizer
    return Tokenizer(tok.merges, pattern=tok.pattern, special_tokens=tok.special_tokens,
                     byte_ids=tok.byte_ids).prepare()


# ------------------------------------------------------------------------------------------------ report
def machine_info() -> dict:
    import importlib.metadata as md
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("rustbpe", "tokenizers", "tiktoken", "regex", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "load_average_at_start": list(os.getloadavg()), "versions": versions}


def ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def build_table(report: dict) -> str:
    """One markdown table: training rows (seconds, peak MB), then encoding rows (MB/s)."""
    rows = [("measure", "corpus", "ours", "rustbpe", "HF tokenizers", "tiktoken", "minbpe-naive",
             "ours/ref", "check")]
    for t in report["train"]:
        o, r, h = t["ours"], t.get("rustbpe"), t.get("hf")
        same = "merges = rustbpe" if t["merges_identical_to_rustbpe"] else "MERGES DIFFER"
        rows.append((f"train V={t['vocab']} (s)", t["corpus"], f"{o['seconds']:.2f}",
                     f"{r['seconds']:.2f}" if r else "-", f"{h['seconds']:.2f}" if h else "-", "-", "-",
                     f"{ratio(o['seconds'], r and r['seconds'])} rb, {ratio(o['seconds'], h and h['seconds'])} HF",
                     f"{same} ({o['merges']} merges{'' if o['merges'] == t['vocab'] - 256 else ': corpus exhausted'})"))
        rows.append((f"  peak MB, V={t['vocab']}", t["corpus"], f"{o['peak_mb']:.0f}",
                     f"{r['peak_mb']:.0f}" if r else "-", f"{h['peak_mb']:.0f}" if h else "-", "-", "-",
                     f"{ratio(o['peak_mb'], r and r['peak_mb'])} rb, {ratio(o['peak_mb'], h and h['peak_mb'])} HF", ""))
    for n in report["naive"]:
        rows.append((f"train V={n['vocab']}, first {n['slice_bytes'] // 1000} KB (s)", n["corpus"],
                     f"{n['ours']['seconds']:.2f}", "-", "-", "-", f"{n['naive']['seconds']:.2f}",
                     f"{ratio(n['ours']['seconds'], n['naive']['seconds'])} naive",
                     "merges = naive" if n["merges_identical_to_naive"] else "MERGES DIFFER"))
    for corpus, results in report["encode"].items():
        for e in results:
            if "tokens" not in e:
                rows.append((f"{e['name']} (MB/s)", corpus, f"{e['encode_mbs']:.1f}", "-", "-", "-", "-", "-", "upper bound of a regex-based encoder"))
                continue
            rows.append((f"encode_ordinary {e['name']} (MB/s)", corpus, f"{e['encode_mbs']:.1f}", "-", "-",
                         f"{e['tiktoken_encode_mbs']:.1f}", "-", f"{ratio(e['encode_mbs'], e['tiktoken_encode_mbs'])} tt",
                         ("ids = tiktoken" if e["ids_identical"] else "IDS DIFFER")
                         + f"; warm cache {e['warm_encode_mbs']:.1f} MB/s"))
            rows.append((f"decode {e['name']} (MB/s)", corpus, f"{e['decode_mbs']:.1f}", "-", "-",
                         f"{e['tiktoken_decode_mbs']:.1f}", "-", f"{ratio(e['decode_mbs'], e['tiktoken_decode_mbs'])} tt", ""))
            rows.append((f"encode_batch {e['name']} (MB/s)", corpus, f"{e['batch_mbs']:.1f}", "-", "-",
                         f"{e['tiktoken_batch_mbs']:.1f}", "-", f"{ratio(e['batch_mbs'], e['tiktoken_batch_mbs'])} tt",
                         f"{e['batch_docs']} lines; tiktoken uses threads"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora",
                        help="folder holding tinyshakespeare.txt, shuihu.txt, cl100k_base.tiktoken (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 KB slices, V=1000 only, 1 repeat")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per measurement (default 3, 1 with --quick)")
    parser.add_argument("--vocabs", default=None, help="training vocab sizes (default 1000,4096,32768)")
    parser.add_argument("--naive-slice", type=int, default=None, help="bytes for the naive trainer (default 20000)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bpe_bench.json",
                        help="JSON results file (default: %(default)s)")
    parser.add_argument("--child", nargs=4, metavar=("IMPL", "CORPUS", "VOCAB", "SLICE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        impl, corpus, vocab, slice_bytes = args.child
        print(json.dumps(train_child(impl, corpus, int(vocab), int(slice_bytes))))
        return 0

    repeats = args.repeats or (1 if args.quick else 3)
    vocabs = [int(v) for v in (args.vocabs or ("1000" if args.quick else "1000,4096,32768")).split(",")]
    slice_bytes = 200_000 if args.quick else 0
    naive_slice = args.naive_slice or (4_000 if args.quick else 20_000)
    naive_vocab = 300 if args.quick else 1000
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine_info(), "repeats": repeats, "quick": args.quick, "train": [], "naive": [],
              "encode": {}, "note": "2-core machine shared with other work: times are noisy; ratios come from the same run"}
    corpora = [args.corpora / name for name in CORPORA if (args.corpora / name).is_file()]
    if not corpora:
        print(f"no corpora found in {args.corpora} (looked for {', '.join(CORPORA)})", file=sys.stderr)
        return 1
    skipped = [name for name in CORPORA if not (args.corpora / name).is_file()]
    for corpus in corpora:
        for vocab in vocabs:
            print(f"train {'/'.join(TRAINERS)} V={vocab} {corpus.name}", file=sys.stderr, flush=True)
            row = {"corpus": corpus.stem, "vocab": vocab, **run_train(TRAINERS, corpus, vocab, slice_bytes, repeats)}
            row["merges_identical_to_rustbpe"] = row["ours"]["ranks_sha256"] == row["rustbpe"]["ranks_sha256"]
            report["train"].append(row)
        print(f"train naive/ours V={naive_vocab} on {naive_slice} bytes of {corpus.name}", file=sys.stderr, flush=True)
        naive = {"corpus": corpus.stem, "vocab": naive_vocab, "slice_bytes": naive_slice,
                 **run_train(("naive", "ours"), corpus, naive_vocab, naive_slice, 1)}
        naive["merges_identical_to_naive"] = naive["ours"]["ranks_sha256"] == naive["naive"]["ranks_sha256"]
        report["naive"].append(naive)
        print(f"encode {corpus.name}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            report["encode"][corpus.stem] = encoding_suite(corpus, read_corpus(corpus, slice_bytes), args.corpora,
                                                           4096, repeats, Path(tmp))
    if skipped:
        report["skipped_corpora"] = skipped
    table = build_table(report)
    report["table"] = table
    m = report["machine"]
    print(f"\n{m['cpu']}, {m['cores']} cores, Python {m['python']}; load average at start "
          f"{m['load_average_at_start'][0]:.1f}; medians of {repeats} run(s)\n")
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(report, indent=1))
    os.replace(tmp_out, args.out)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
