"""Pictures of a run: train/val loss and tokens/s over steps, from RUN_DIR/metrics.jsonl, as a PNG.

matplotlib is an optional extra (`pip install matplotlib`, or `pip install -e '.[plot]'`); without it,
plot_run raises one line saying how to install it.
"""
from pathlib import Path

from tinygpt.errors import TinyGPTError

INSTALL_HINT = "plotting needs matplotlib: pip install matplotlib (or pip install -e '.[plot]')"


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise TinyGPTError(INSTALL_HINT) from None
    matplotlib.use("Agg")  # write files; never open a window
    import matplotlib.pyplot as plt
    return plt


def plot_run(run_dir, out=None) -> Path:
    """Write a PNG of the run's loss curves (train, val, val bits per byte) and tokens/s; return its path.

    `out` defaults to RUN_DIR/loss.png. The file is written to a temporary name and renamed.
    """
    from bpe.atomic import atomic_path
    from tinygpt.checkpoint import METRICS, read_metrics
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TinyGPTError(f"{run_dir}: no such run directory; train one with `tinygpt train --out {run_dir}`")
    records = [r for r in read_metrics(run_dir) if isinstance(r.get("step"), int)]
    if not records:
        raise TinyGPTError(f"{run_dir / METRICS}: no metrics yet; train the run for a few steps first")
    out = Path(out) if out is not None else run_dir / "loss.png"
    if out.suffix.lower() != ".png":
        raise TinyGPTError(f"{out}: the picture is a PNG; give a file name ending in .png")
    plt = _pyplot()

    steps = [r["step"] for r in records if "loss" in r]
    evals = [r for r in records if "val_loss" in r]
    speed = [r for r in records if r.get("tokens_per_s") and r["step"] > 2]  # the first steps include compiling
    fig, (ax_loss, ax_speed) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True,
                                            gridspec_kw={"height_ratios": [3, 1.2]})
    ax_loss.plot(steps, [r["loss"] for r in records if "loss" in r], label="train loss", color="tab:blue", lw=1)
    if evals:
        ax_loss.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", label="val loss",
                     color="tab:orange", ms=4)
    ax_loss.set_ylabel("cross-entropy (nats / token)")
    ax_loss.set_title(f"{run_dir.name}: loss over training")
    ax_loss.grid(alpha=0.3)
    if evals and all("val_bpb" in r for r in evals):
        ax_bpb = ax_loss.twinx()
        ax_bpb.plot([r["step"] for r in evals], [r["val_bpb"] for r in evals], "s--", color="tab:green", ms=3,
                    lw=0.8, label="val bits/byte")
        ax_bpb.set_ylabel("val bits per byte", color="tab:green")
        handles = ax_loss.get_legend_handles_labels()[0] + ax_bpb.get_legend_handles_labels()[0]
        ax_loss.legend(handles, [h.get_label() for h in handles], loc="upper right")
    else:
        ax_loss.legend(loc="upper right")
    if speed:
        ax_speed.plot([r["step"] for r in speed], [r["tokens_per_s"] for r in speed], color="tab:purple", lw=1)
    ax_speed.set_ylabel("tokens / s")
    ax_speed.set_xlabel("step")
    ax_speed.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out


__all__ = ["plot_run", "INSTALL_HINT"]
