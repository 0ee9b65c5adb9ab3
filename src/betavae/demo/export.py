"""A run's encoder and decoder as ONNX models, checked against PyTorch, for the in-browser demo.

The page runs the models with ONNX Runtime Web, so everything it shows is computed from
these two files: ``encoder.onnx`` (image in [0, 1] → μ, log σ²) and ``decoder.onnx``
(z → image in [0, 1], the sigmoid applied). Both carry the run's description (latent
size, image shape, β and β_norm, dataset, held-out KL per dimension …) in their
``metadata_props``, and ``model.json`` repeats it for the page with the file names.

An exported model that computes something else than the trained one would show a wrong
demo without any sign of it, so every export is run with onnxruntime on random inputs
(uniform images, codes drawn from the prior) and on real ones (held-out images and their
μ) and compared with PyTorch; a largest absolute difference above the bound (or NaN) is
an error and nothing is written. PyTorch's side is the model as it runs on this machine,
including the CPU-only rewrite of the last transposed convolution
(:class:`betavae.models.layers.ImageTransposedConv`), while the export holds the stock
``ConvTranspose`` operator: the check is what shows that the two compute the same.

The models use opset 17 and standard ONNX operators only, with a dynamic batch axis on
every input and output, which ONNX Runtime Web runs.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from betavae.errors import BetaVAEError
from betavae.files import atomic_write_bytes, atomic_write_text, claim_folder
from betavae.models import BetaVAE
from betavae.runs import RunDir, load_model

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
MANIFEST_FILE = "model.json"
TEST_IMAGES_FILE = "test_images.png"
# The layout of model.json; raised when its keys change meaning, so that the page can refuse an old one.
FORMAT = 1
# The folder of a run that ``export_run`` writes into unless told otherwise.
EXPORT_DIR = "export"
# The kind in the mark of an export folder (betavae.files): the only folder an export writes into.
KIND = "betavae export"
# ONNX Runtime Web 1.30 runs opset 17.
OPSET = 17
# The domains of standard ONNX operators; anything else (ATen fallbacks, custom ops) the browser cannot run.
STANDARD_DOMAINS = ("", "ai.onnx")
# Batch sizes of the trace and of the random check inputs: the exported models must take any other.
_TRACE_BATCH = 2
_RANDOM_BATCH = 8


@dataclass(frozen=True)
class ExportCheck:
    """The largest absolute difference between each ONNX model's outputs and PyTorch's, and the bound."""

    encoder_max_abs_diff: float
    decoder_max_abs_diff: float
    tolerance: float


@dataclass(frozen=True)
class ExportedRun:
    """What :func:`export_run` wrote: the folder, ``model.json``'s content and the check."""

    out_dir: Path
    manifest: dict[str, Any]
    check: ExportCheck

    @property
    def files(self) -> list[Path]:
        return [self.out_dir / name for name in (ENCODER_FILE, DECODER_FILE, TEST_IMAGES_FILE, MANIFEST_FILE)]

    def check_lines(self) -> list[str]:
        """One line per model: its largest difference from PyTorch, and the bound it met."""
        bound = format_bound(self.check.tolerance)
        return [f"{self.manifest[key]}: largest |ONNX − PyTorch| {diff:.1e} (bound {bound})"
                for key, diff in (("encoder", self.check.encoder_max_abs_diff),
                                  ("decoder", self.check.decoder_max_abs_diff))]


class _Encoder(nn.Module):
    """image → (μ, log σ²), the two halves of the encoder's output."""

    def __init__(self, model: BetaVAE) -> None:
        super().__init__()
        self.encoder = model.encoder

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(image).chunk(2, dim=1)
        return mu, logvar


class _Decoder(nn.Module):
    """z → image in [0, 1]: the decoder's logits through the sigmoid (:meth:`BetaVAE.decode`)."""

    def __init__(self, model: BetaVAE) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))


def export_model(
    model: BetaVAE,
    out_dir: str | Path,
    metadata: dict[str, Any],
    *,
    check_inputs: torch.Tensor | None = None,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> ExportCheck:
    """Write ``encoder.onnx`` and ``decoder.onnx`` into ``out_dir``, checked against PyTorch first.

    Args:
        model: the β-VAE to export.
        out_dir: the folder the two files go into (created if needed).
        metadata: written into both models' ``metadata_props``: strings as they are, other
            values (numbers, lists, dicts) as JSON.
        check_inputs: real images (B, C, H, W), floats in [0, 1] or uint8 0..255, to check
            the encoder on, and their μ the decoder; random inputs are checked either way.
        tolerance: the largest absolute difference allowed between ONNX and PyTorch outputs.
        seed: of the random check inputs.

    Nothing is written when an output differs by more than ``tolerance`` or is NaN: that is
    a :class:`BetaVAEError` naming the model, the difference and the bound.
    """
    if not tolerance >= 0 or not np.isfinite(tolerance):
        raise BetaVAEError(f"tolerance {tolerance} is not a number 0 or above; give a bound such as 1e-4")
    with _evaluating(model):
        encoder, decoder = _encoder_onnx(model, metadata), _decoder_onnx(model, metadata)
        check = check_onnx(model, encoder, decoder, images=check_inputs, tolerance=tolerance, seed=seed)
    out_dir = claim_export_folder(out_dir)
    atomic_write_bytes(out_dir / ENCODER_FILE, encoder)
    atomic_write_bytes(out_dir / DECODER_FILE, decoder)
    return check


def check_onnx(
    model: BetaVAE,
    encoder: bytes | str | Path,
    decoder: bytes | str | Path,
    *,
    images: torch.Tensor | None = None,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> ExportCheck:
    """Run the ONNX ``encoder`` and ``decoder`` (bytes or files) with onnxruntime and compare with ``model``.

    Inputs: uniform random images and codes from N(0, I) drawn with ``seed``, and, when
    given, the real ``images`` and their μ. Each model's outputs must lie within
    ``tolerance`` of PyTorch's (:meth:`BetaVAE.encode` and :meth:`BetaVAE.decode`, as they
    run here) and hold only standard ONNX operators; otherwise a :class:`BetaVAEError`.
    """
    graphs = {ENCODER_FILE: _load_proto(encoder), DECODER_FILE: _load_proto(decoder)}
    for name, proto in graphs.items():
        _refuse_nonstandard(name, proto)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    image_batches = [torch.rand((_RANDOM_BATCH, *model.image_shape), generator=generator)]
    code_batches = [torch.randn((_RANDOM_BATCH, model.latent_dim), generator=generator)]
    if images is not None:
        real = images.float().div(255) if images.dtype == torch.uint8 else images.float()
        image_batches.append(real.cpu())
        with torch.no_grad():
            code_batches.append(model.encode(real.to(device))[0].cpu())
    encoder_session = _session(graphs[ENCODER_FILE])
    encoder_diffs = []
    with torch.no_grad():
        for batch in image_batches:
            expected = [t.cpu().numpy() for t in model.encode(batch.to(device))]
            got = encoder_session.run(["mu", "logvar"], {"image": batch.numpy()})
            encoder_diffs += [_max_abs_diff(a, b) for a, b in zip(got, expected, strict=True)]
    # np.max, unlike max(), keeps a NaN: an output that is not a number never passes.
    encoder_diff = float(np.max(encoder_diffs))
    _refuse_above(ENCODER_FILE, encoder_diff, tolerance)
    decoder_diff = _decoder_difference(model, graphs[DECODER_FILE], code_batches)
    _refuse_above(DECODER_FILE, decoder_diff, tolerance)
    return ExportCheck(encoder_diff, decoder_diff, tolerance)


def export_decoder(model: BetaVAE, metadata: dict[str, Any], codes: torch.Tensor | None = None, *,
                   tolerance: float = 1e-4, seed: int = 0) -> tuple[bytes, float]:
    """The decoder alone as ONNX bytes (``z`` → ``image``, as in :func:`export_model`), checked against
    PyTorch on codes from N(0, I) and on ``codes``; returns the bytes and the largest difference.

    For pages that only decode (the study's poster): the encoder's half of the bytes is not fetched.
    """
    with _evaluating(model):
        decoder = _decoder_onnx(model, metadata)
        proto = _load_proto(decoder)
        _refuse_nonstandard(DECODER_FILE, proto)
        generator = torch.Generator().manual_seed(seed)
        batches = [torch.randn((_RANDOM_BATCH, model.latent_dim), generator=generator)]
        if codes is not None:
            batches.append(codes.float().cpu())
        diff = _decoder_difference(model, proto, batches)
    _refuse_above(DECODER_FILE, diff, tolerance)
    return decoder, diff


def _decoder_difference(model: BetaVAE, proto: Any, code_batches: list[torch.Tensor]) -> float:
    """The largest |ONNX − PyTorch| of the decoder over ``code_batches`` (NaN kept: it never passes)."""
    device = next(model.parameters()).device
    session = _session(proto)
    diffs = []
    with torch.no_grad():
        for batch in code_batches:
            expected_image = model.decode(batch.to(device)).cpu().numpy()
            (got_image,) = session.run(["image"], {"z": batch.numpy()})
            diffs.append(_max_abs_diff(got_image, expected_image))
    return float(np.max(diffs))


def _refuse_nonstandard(name: str, proto: Any) -> None:
    foreign = nonstandard_ops(proto)
    if foreign:
        raise BetaVAEError(
            f"{name} holds operators outside standard ONNX ({', '.join(foreign)}), which ONNX Runtime "
            f"Web cannot run; the model needs a layer that exports to standard operators"
        )


def _refuse_above(name: str, diff: float, tolerance: float) -> None:
    if not diff <= tolerance:
        why = " (an output is NaN: do the weights hold NaN?)" if np.isnan(diff) else ""
        raise BetaVAEError(
            f"{name} disagrees with PyTorch: largest |ONNX − PyTorch| {diff:.1e} exceeds the bound "
            f"{format_bound(tolerance)}{why}; nothing was written"
        )


def format_bound(tolerance: float) -> str:
    """``1e-04`` for a round bound, ``2.50e-04`` for another: as the CLI prints it."""
    rounded = f"{tolerance:.0e}"
    return rounded if float(rounded) == tolerance else f"{tolerance:.2e}"


def export_run(
    run_dir: str | Path, out_dir: str | Path | None = None, *, images: int = 16, tolerance: float = 1e-4
) -> ExportedRun:
    """Export a trained run for the demo: the two ONNX models, ``test_images.png`` and ``model.json``.

    ``out_dir`` defaults to ``RUN_DIR/export``; while writing inside the run folder its
    lock is held. ``images`` held-out test images (the first of the same seeded choice as
    the reconstruction figures) are both the real check inputs and the strip
    ``test_images.png`` (width ``images·W``, height ``H``) the page encodes.
    ``model.json`` is written last, so a folder holding it holds the rest.
    """
    from betavae.viz.traversals import held_out_kl

    if images < 1:
        raise BetaVAEError(f"--images {images} exports no test image; give --images 1 or more")
    run = RunDir(run_dir)
    out = run.path / EXPORT_DIR if out_dir is None else Path(out_dir)
    inside = out.resolve().is_relative_to(run.path.resolve())
    with run.lock("betavae export") if inside else nullcontext():
        claim_export_folder(out)  # before the work: a user's folder is refused, not written into
        config = run.read_config()
        derived = run.read_derived()
        kl_per_dim = held_out_kl(run, config.latent_dim)  # a folder without a checkpoint fails here
        step = run.checkpoint_step()
        model = load_model(run, "cpu")
        test_images = held_out_images(config.load_dataset().test, images)
        metadata = {
            "format": FORMAT,
            "run": run.path.resolve().name,
            "arch": derived.arch,
            "dataset": config.dataset,
            "objective": config.objective,
            "latent_dim": config.latent_dim,
            "image_shape": list(derived.image_shape),
            "beta": derived.beta,
            "beta_norm": derived.beta_norm,
            "step": step,
            "kl_per_dim": kl_per_dim,
            "metrics": headline_metrics(run, step),
        }
        check = export_model(model, out, metadata, check_inputs=test_images, tolerance=tolerance)
        save_strip(test_images, out / TEST_IMAGES_FILE)
        manifest = {
            **metadata,
            "encoder": ENCODER_FILE,
            "decoder": DECODER_FILE,
            "test_images": TEST_IMAGES_FILE,
            "test_image_count": len(test_images),
            "check": asdict(check),
        }
        atomic_write_text(out / MANIFEST_FILE, json.dumps(manifest, indent=2, allow_nan=False) + "\n")
    return ExportedRun(out, manifest, check)


def claim_export_folder(out: str | Path) -> Path:
    """``out`` as an export's folder: new, empty, or an earlier export's (by its mark, or, for one
    written before marks, by a ``model.json`` of ours and only the files an export writes)."""
    return claim_folder(out, KIND, what="export folder", adopt=_earlier_export)


def _earlier_export(folder: Path) -> bool:
    names = {path.name for path in folder.iterdir()}
    written = {ENCODER_FILE, DECODER_FILE, MANIFEST_FILE, TEST_IMAGES_FILE}
    if not names <= written or MANIFEST_FILE not in names:
        return False
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("encoder") == ENCODER_FILE and "check" in manifest


def read_metadata(model: bytes | str | Path) -> dict[str, str]:
    """An ONNX model's ``metadata_props`` as a dict of strings."""
    return {prop.key: prop.value for prop in _load_proto(model).metadata_props}


def nonstandard_ops(model: Any) -> list[str]:
    """The operators of an ONNX model (a ``ModelProto``) outside the standard domain, as ``domain::Op``."""
    return sorted({f"{node.domain}::{node.op_type}" for node in model.graph.node
                   if node.domain not in STANDARD_DOMAINS})


@contextmanager
def _evaluating(model: BetaVAE) -> Iterator[None]:
    """``model`` in eval mode for the block (exports and their checks), then back in the mode it had."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _encoder_onnx(model: BetaVAE, metadata: dict[str, Any]) -> bytes:
    """The encoder's ONNX bytes (image → μ, log σ²), with ``metadata`` in its ``metadata_props``."""
    example = torch.rand((_TRACE_BATCH, *model.image_shape), device=next(model.parameters()).device)
    return _with_metadata(_to_onnx(_Encoder(model), example, ["image"], ["mu", "logvar"]), metadata)


def _decoder_onnx(model: BetaVAE, metadata: dict[str, Any]) -> bytes:
    """The decoder's ONNX bytes (z → image in [0, 1]), with ``metadata`` in its ``metadata_props``."""
    example = torch.zeros((_TRACE_BATCH, model.latent_dim), device=next(model.parameters()).device)
    return _with_metadata(_to_onnx(_Decoder(model), example, ["z"], ["image"]), metadata)


def _to_onnx(module: nn.Module, example: torch.Tensor, inputs: list[str], outputs: list[str]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated, but needs no onnxscript and writes opset 17 as asked.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in [*inputs, *outputs]},
            opset_version=OPSET,
        )
    return buffer.getvalue()


def _with_metadata(model_bytes: bytes, metadata: dict[str, Any]) -> bytes:
    import onnx

    proto = onnx.load_from_string(model_bytes)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, allow_nan=False)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _load_proto(model: bytes | str | Path) -> Any:
    import onnx

    return onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))


def _session(proto: Any) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings are about this machine, not the model
    return onnxruntime.InferenceSession(
        proto.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )


def _max_abs_diff(got: np.ndarray, expected: np.ndarray) -> float:
    """The largest |got − expected|: NaN when the shapes differ or either side holds a NaN."""
    if got.shape != expected.shape:
        return float("nan")
    return float(np.abs(got.astype(np.float64) - expected).max(initial=0.0))


def held_out_images(split: Any, count: int) -> torch.Tensor:
    """The first ``count`` held-out images of the seeded choice the reconstruction figures show (uint8)."""
    positions = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:count]
    return split.images(positions).cpu()


def headline_metrics(run: RunDir, step: int) -> dict[str, float | None]:
    """Each metric evaluated on the checkpoint's weights: its headline score (None where it was NaN)."""
    from betavae.evaluation import METRICS_SECTION
    from betavae.metrics import METRICS
    from betavae.metrics.settings import headline_value

    section = run.current_result(METRICS_SECTION, step) or {}
    return {name: headline_value(name, section[name])
            for name in METRICS if isinstance(section.get(name), dict)}


def save_strip(images: torch.Tensor, path: Path) -> Path:
    """The images side by side in one row, without gaps or scaling: grey ("L") or RGB."""
    from PIL import Image

    from betavae.viz.grid import save_png, to_uint8_images

    strip = np.concatenate(list(to_uint8_images(images)), axis=1)  # (H, count·W, C)
    return save_png(Image.fromarray(strip[..., 0] if strip.shape[-1] == 1 else strip), path)
