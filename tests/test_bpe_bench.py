"""The benchmark script runs end to end (--quick, on a tiny corpus) and its checks hold: same merges, same ids."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_bpe_bench_quick_on_a_tiny_corpus(tmp_path):
    for reference in ("rustbpe", "tokenizers", "tiktoken"):
        pytest.importorskip(reference)
    corpora = tmp_path / "corpora"
    corpora.mkdir()
    lines = [f"Line {i}: the {w} fox said {w * (i % 3 + 1)}, and 水浒传 {i % 7}.\n"
             for i, w in enumerate(["quick", "brown", "lazy", "red", "old"] * 60)]
    (corpora / "tinyshakespeare.txt").write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bpe_bench.py"), "--quick", "--corpora",
                          str(corpora), "--vocabs", "300", "--naive-slice", "2000", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["skipped_corpora"] == ["shuihu.txt"]
    assert [row["merges_identical_to_rustbpe"] for row in report["train"]] == [True]
    assert report["naive"][0]["merges_identical_to_naive"]
    encoded = [e for e in report["encode"]["tinyshakespeare"] if "ids_identical" in e]
    assert encoded and all(e["ids_identical"] for e in encoded)
    assert "| train V=300 (s)" in run.stdout and report["machine"]["cores"] >= 1
