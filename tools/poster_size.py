"""How large each study scale's poster is (docs/guide/poster.md), counted without training anything.

Every run of every sweep of a scale (the study's own ``sweep_spec``) ships its decoder as ONNX, whose
size this measures by exporting an untrained model of each architecture and latent size, plus its PNGs
and model.json (about 6 kB), plus ONNX Runtime Web once.

    python tools/poster_size.py
"""

from __future__ import annotations

import collections

from betavae.demo import vendor
from betavae.demo.export import export_decoder
from betavae.models import build
from betavae.studies.grid import expand_grid
from betavae.study.design import SCALES, scale_of
from betavae.study.runner import sweep_spec

IMAGE_SHAPES = {"conv28": (1, 28, 28), "conv64": (1, 64, 64), "fc": (1, 64, 64)}
PER_RUN_EXTRA = 6_000  # two PNG strips and model.json


def main() -> None:
    ort = sum(path.stat().st_size for path in vendor.require(print).iterdir())
    decoder_bytes: dict[tuple[str, int], int] = {}
    for name in (name for name in SCALES if name != "test"):
        scale = scale_of(name)
        runs: collections.Counter[tuple[str, int]] = collections.Counter()
        for part in scale.parts_of():
            for kind in scale.sweeps_of(part):
                spec = sweep_spec(part, kind, scale)
                for point in expand_grid(spec, "poster-size"):
                    runs[(point.config.arch or part.arch, point.config.latent_dim)] += 1
        total = ort
        for key, count in runs.items():
            if key not in decoder_bytes:
                decoder_bytes[key] = len(export_decoder(build(key[0], key[1], IMAGE_SHAPES[key[0]]), {})[0])
            total += count * (decoder_bytes[key] + PER_RUN_EXTRA)
        print(f"{name}: {sum(runs.values())} runs, {total / 1e6:,.0f} MB")
    for (arch, latent), size in sorted(decoder_bytes.items()):
        print(f"decoder {arch} M={latent}: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
