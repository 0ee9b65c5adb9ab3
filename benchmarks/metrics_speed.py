"""Time of each disentanglement metric at its default sizes, on dSprites with a conv64 model.

Prints, per metric, the wall time and how it splits between rendering images, encoding
them with the model (the posterior mean μ), and the rest (fitting classifiers, counting).
The target is all five metrics in under 5 minutes on a 2-core CPU; the shares say where
to look when it is missed.

    python benchmarks/metrics_speed.py [--run RUN_DIR] [--metrics all] [--scale 1.0]

Without ``--run`` the model is an untrained conv64 encoder: the same compute as a
trained one, so the same time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from betavae import data, metrics, models
from betavae.evaluation import cheapest_representation
from betavae.metrics.representation import model_representation
from betavae.metrics.settings import images_encoded, parse_metric_names
from betavae.runs import load_model


class Stopwatch:
    """Wraps a function of a batch and adds up the seconds spent inside it and the batch sizes."""

    def __init__(self, function):
        self.function = function
        self.reset()

    def reset(self) -> None:
        self.seconds, self.items = 0.0, 0

    def __call__(self, batch, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.function(batch, *args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.items += len(batch)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", help="a trained dSprites run folder (default: untrained conv64)")
    parser.add_argument("--metrics", default="all")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the default sizes (for a quick look)"
    )
    parser.add_argument(
        "--no-table", action="store_true", help="encode per metric, never a table of all codes"
    )
    args = parser.parse_args()

    dataset = data.load("dsprites")
    if args.run:
        model = load_model(args.run)
    else:
        torch.manual_seed(0)
        model = models.build("conv64", 10, dataset.image_shape).eval()
        # spread the untrained codes like a trained model's, or FactorVAE prunes them all
        with torch.no_grad():
            model.encoder[-1].weight.mul_(100)
    render = Stopwatch(dataset.render)
    dataset.render = render  # the metrics render through the dataset: time it there
    encode = Stopwatch(model_representation(model))
    names = parse_metric_names(args.metrics)
    sizes = {}
    for name in names:
        defaults = metrics.get(name).defaults
        sizes[name] = {size: int(defaults[size] * args.scale) for size in metrics.get(name).sizes}
    needed = sum(images_encoded(name, sizes[name]) for name in names)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; dSprites ({len(dataset):,} images), "
        f"conv64, sizes × {args.scale}; the metrics ask for {needed:,} images"
    )
    start = time.perf_counter()
    represent = encode if args.no_table else cheapest_representation(dataset, encode, needed)
    table_seconds = time.perf_counter() - start
    if represent is not encode:
        print(
            f"table of every code: {table_seconds:.1f} s, {encode.items:,} images, "
            f"{encode.items / encode.seconds:,.0f} img/s encoding, render {render.seconds:.1f} s"
        )
    print(
        f"{'metric':<11} {'seconds':>8} {'render':>7} {'encode':>7} {'rest':>6} {'images':>10} "
        f"{'img/s enc':>10}"
    )
    total = table_seconds
    for name in names:
        render.reset()
        encode.reset()
        start = time.perf_counter()
        result = metrics.get(name).compute(dataset, represent, np.random.default_rng(0), **sizes[name])
        seconds = time.perf_counter() - start
        total += seconds
        rest = seconds - render.seconds - encode.seconds
        rate = f"{encode.items / encode.seconds:>10,.0f}" if encode.seconds else f"{'-':>10}"
        print(
            f"{name:<11} {seconds:>8.1f} {render.seconds / seconds:>7.0%} {encode.seconds / seconds:>7.0%} "
            f"{rest / seconds:>6.0%} {encode.items:>10,} {rate}   "
            + ", ".join(f"{key} {value:.3g}" for key, value in list(result.items())[:3])
        )
    print(f"{'all':<11} {total:>8.1f} s in all, the table included (target: under 300 s at scale 1)")


if __name__ == "__main__":
    main()
