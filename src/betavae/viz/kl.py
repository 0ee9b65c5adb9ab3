"""KL per latent dimension as bars: which dimensions carry information and which collapsed.

A β-VAE switches off the dimensions it does not need (their posterior equals the
prior, KL ≈ 0); the held-out KL of each dimension, recorded in ``metrics.json`` at the
end of training, shows at a glance how many are in use.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from betavae.runs import RunDir
from betavae.viz import save_figure

FILE_NAME = "kl.svg"


def kl_figure(run_dir: str | Path, active_threshold: float | None = None) -> Path:
    """A bar chart of KL (nats) per dimension, with the active-dimension threshold drawn in.

    Written into the run folder while holding its lock, from the held-out KL of the
    weights in the checkpoint (a stale one is refused).
    """
    from betavae.viz.traversals import held_out_kl

    run = RunDir(run_dir)
    with run.lock("betavae show"):
        values = held_out_kl(run, run.read_config().latent_dim)
        return save_figure(_bar_chart(run.path.name, values, active_threshold), run.path / FILE_NAME)


def _bar_chart(title: str, values: list[float], active_threshold: float | None) -> Figure:
    """The chart, bars above the active threshold in colour."""
    from betavae.viz.traversals import ACTIVE_KL

    threshold = ACTIVE_KL if active_threshold is None else active_threshold
    figure = Figure(figsize=(max(4.0, 0.35 * len(values) + 1.5), 3.2))
    axes = figure.subplots()
    colours = ["tab:blue" if value > threshold else "tab:gray" for value in values]
    axes.bar(range(len(values)), values, color=colours)
    axes.axhline(threshold, color="black", linestyle="--", linewidth=0.8, label=f"active: KL > {threshold:g}")
    axes.set_xticks(range(len(values)), [f"z{i}" for i in range(len(values))],
                    rotation=90 if len(values) > 20 else 0)
    axes.set_xlabel("latent dimension")
    axes.set_ylabel("KL (nats), held-out mean")
    active = sum(value > threshold for value in values)
    axes.set_title(f"{title}: {active} of {len(values)} dimensions active")
    axes.legend(loc="upper right", frameon=False)
    figure.tight_layout()
    return figure
