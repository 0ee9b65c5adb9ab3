"""One run for the poster: its decoder as ONNX (checked against PyTorch), its held-out images, their codes and
reconstructions, and ``model.json`` saying what the page needs to draw it.

The poster shows tens of runs and must open fast, so each run ships only what the page decodes live: the
decoder (traversals and sliders). The held-out images' μ (where the traversal starts, and what a click on
an image sets the sliders to) and their reconstructions are computed here with PyTorch: the encoder's
megabytes would be fetched only to compute the same numbers again in the browser.

``model.json`` is written last, so a folder holding it holds the rest; its ``step`` is the checkpoint's,
which is how a later build knows the export still describes the run's weights and keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from betavae.demo.export import DECODER_FILE, export_decoder, headline_metrics, held_out_images, save_strip
from betavae.files import atomic_write_bytes, atomic_write_text, make_folder
from betavae.runs import RunDir, load_model

MANIFEST_FILE = "model.json"
TEST_IMAGES_FILE = "test_images.png"
RECONSTRUCTIONS_FILE = "reconstructions.png"
# The layout of a poster run's model.json; raised when its keys change meaning (a later build exports again).
FORMAT = 1
# The traversal the page draws: every dimension from LOW to HIGH in STEPS values (Higgins et al.'s Fig. 1–2).
TRAVERSAL = {"low": -2.5, "high": 2.5, "steps": 11}
# Held-out images each run ships (a row of thumbnails beside their reconstructions).
IMAGES = 8


def traversal_values() -> np.ndarray:
    return np.linspace(TRAVERSAL["low"], TRAVERSAL["high"], TRAVERSAL["steps"])


def export_run(run_dir: str | Path, out: str | Path, *, images: int = IMAGES, tolerance: float = 1e-4,
               split_of: Callable[[Any], Any] | None = None,
               about: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the poster's files of ``run_dir`` into ``out``; return ``model.json``'s content.

    ``split_of(config)`` gives the held-out split (the builder keeps one per dataset, so a poster of
    tens of runs renders each set once); ``about`` is added to ``model.json`` (the run's part, sweep and
    seed, which the page shows). The decoder is checked on codes from the prior and on the held-out
    images' μ with every traversal around the first of them (what the page decodes first).
    """
    from betavae.viz.traversals import ACTIVE_KL, held_out_kl, order_by_kl, traversal_codes

    run = RunDir(run_dir)
    out = make_folder(out, "poster run folder")
    config = run.read_config()
    derived = run.read_derived()
    kl = held_out_kl(run, config.latent_dim)
    step = run.checkpoint_step()
    model = load_model(run, "cpu").eval()
    split = split_of(config) if split_of is not None else config.load_dataset().test
    pictures = held_out_images(split, images)
    with torch.no_grad():
        codes = model.encode(pictures.float().div(255))[0]
        reconstructions = model.decode(codes)
        order = order_by_kl(range(config.latent_dim), kl)
        first_traversal = traversal_codes(model, codes[0], order, traversal_values())
    metadata = {"format": FORMAT, "run": run.path.name, "arch": derived.arch, "dataset": config.dataset,
                "latent_dim": config.latent_dim, "image_shape": list(derived.image_shape), "step": step}
    checked = torch.cat([codes, first_traversal])
    decoder, difference = export_decoder(model, metadata, checked, tolerance=tolerance)
    atomic_write_bytes(out / DECODER_FILE, decoder)
    save_strip(pictures, out / TEST_IMAGES_FILE)
    save_strip(reconstructions, out / RECONSTRUCTIONS_FILE)
    manifest = {
        **metadata, **(about or {}),
        "objective": config.objective, "recon": config.recon,
        "beta": derived.beta, "beta_norm": derived.beta_norm,
        "kl_per_dim": kl, "order": order, "collapsed": [dim for dim in order if kl[dim] <= ACTIVE_KL],
        "metrics": headline_metrics(run, step),
        "codes": codes.tolist(), "traversal": TRAVERSAL,
        "decoder": DECODER_FILE, "test_images": TEST_IMAGES_FILE, "reconstructions": RECONSTRUCTIONS_FILE,
        "test_image_count": len(pictures), "images_asked": images,
        "check": {"decoder_max_abs_diff": difference, "tolerance": tolerance},
    }
    atomic_write_text(out / MANIFEST_FILE, json.dumps(manifest, allow_nan=False) + "\n")
    return manifest


def is_current(folder: Path, run_dir: Path, images: int) -> bool:
    """Whether ``folder`` holds an export of this format, made with ``images`` held-out images asked for (a
    small test split may have had fewer), of the run's checkpoint as it is now."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        step = RunDir(run_dir).checkpoint_step()
    except (OSError, ValueError):
        return False
    return (isinstance(manifest, dict) and manifest.get("format") == FORMAT and manifest.get("step") == step
            and manifest.get("images_asked") == images and manifest.get("traversal") == TRAVERSAL)
