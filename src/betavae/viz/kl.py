"""KL per latent dimension as bars: which dimensions carry information and which collapsed.

A β-VAE switches off the dimensions it does not need (their posterior equals the
prior, KL ≈ 0); the held-out KL of each dimension, recorded in ``metrics.json`` at the
end of training, shows at a glance how many are in use.
"""

from __future__ import annotations

import io
from pathlib import Path

from betavae.runs import RunDir, atomic_write_bytes

FILE_NAME = "kl.svg"


def kl_figure(run_dir: str | Path, active_threshold: float | None = None) -> Path:
    """A bar chart of KL (nats) per dimension, with the active-dimension threshold drawn in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from betavae.viz.traversals import ACTIVE_KL, held_out_kl

    run = RunDir(run_dir)
    values = held_out_kl(run, run.read_config().latent_dim)
    threshold = ACTIVE_KL if active_threshold is None else active_threshold
    figure, axes = plt.subplots(figsize=(max(4.0, 0.35 * len(values) + 1.5), 3.2))
    colours = ["tab:blue" if value > threshold else "tab:gray" for value in values]
    axes.bar(range(len(values)), values, color=colours)
    axes.axhline(threshold, color="black", linestyle="--", linewidth=0.8, label=f"active: KL > {threshold:g}")
    axes.set_xticks(range(len(values)), [f"z{i}" for i in range(len(values))],
                    rotation=90 if len(values) > 20 else 0)
    axes.set_xlabel("latent dimension")
    axes.set_ylabel("KL (nats), held-out mean")
    active = sum(value > threshold for value in values)
    axes.set_title(f"{run.path.name}: {active} of {len(values)} dimensions active")
    axes.legend(loc="upper right", frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    with plt.rc_context({"svg.fonttype": "none"}):  # text stays text: searchable and selectable
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(figure)
    path = run.path / FILE_NAME
    atomic_write_bytes(path, buffer.getvalue())
    return path
