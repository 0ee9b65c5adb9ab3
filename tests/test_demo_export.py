"""``betavae export``: ONNX models that compute what PyTorch does, their metadata, and the check's errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import numpy_helper
from PIL import Image

from betavae.demo.export import (
    DECODER_FILE,
    ENCODER_FILE,
    MANIFEST_FILE,
    TEST_IMAGES_FILE,
    check_onnx,
    export_model,
    nonstandard_ops,
    read_metadata,
)
from betavae.errors import BetaVAEError
from betavae.models import ARCHITECTURES, build, layers
from betavae.runs import RunDir, load_model
from commands import run_cli
from marks import slow_fixture
from runfolders import ACTIVE_SHAPES

TOLERANCE = 1e-4
# Neither the trace's batch (2) nor the check's (8, and 3 real images below): the batch axis must be dynamic.
OTHER_BATCH = 5
METADATA = {"run": "r", "latent_dim": 3, "beta": 4.0, "image_shape": [1, 64, 64],
            "kl_per_dim": [0.5, 0.0, 1.25], "metrics": {"mig": 0.12}}


def small_model(arch: str, channels: int = 1, latent_dim: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    size = ARCHITECTURES[arch].image_size
    return build(arch, latent_dim, (channels, size, size)).eval()


def random_images(model, count: int, seed: int = 1) -> torch.Tensor:
    return torch.rand((count, *model.image_shape), generator=torch.Generator().manual_seed(seed))


def session(path: Path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_architecture_exports_models_that_match_pytorch_at_another_batch_size(
    arch, channels, tmp_path, monkeypatch
):
    model = small_model(arch, channels)
    rewrites = []
    original = layers.transposed_conv_by_taps
    monkeypatch.setattr(layers, "transposed_conv_by_taps",
                        lambda *a, **k: rewrites.append(1) or original(*a, **k))
    check = export_model(model, tmp_path, METADATA, check_inputs=random_images(model, 3), tolerance=TOLERANCE)
    # For grey images PyTorch's side of the check ran the CPU-only rewrite of the last layer, where the
    # decoder ends in a transposed convolution (fc's ends in a linear layer).
    transposed = any(isinstance(layer, torch.nn.ConvTranspose2d) for layer in model.decoder)
    assert bool(rewrites) == (channels == 1 and transposed)
    assert 0 <= check.encoder_max_abs_diff <= TOLERANCE and 0 <= check.decoder_max_abs_diff <= TOLERANCE

    images = random_images(model, OTHER_BATCH, seed=7)
    codes = torch.randn((OTHER_BATCH, model.latent_dim), generator=torch.Generator().manual_seed(7))
    mu, logvar = session(tmp_path / ENCODER_FILE).run(["mu", "logvar"], {"image": images.numpy()})
    (decoded,) = session(tmp_path / DECODER_FILE).run(["image"], {"z": codes.numpy()})
    with torch.no_grad():
        expected_mu, expected_logvar = model.encode(images)
        expected_images = model.decode(codes)
    assert mu.shape == logvar.shape == (OTHER_BATCH, model.latent_dim)
    assert decoded.shape == (OTHER_BATCH, *model.image_shape) and 0 <= decoded.min() and decoded.max() <= 1
    np.testing.assert_allclose(mu, expected_mu.numpy(), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(logvar, expected_logvar.numpy(), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(decoded, expected_images.numpy(), rtol=0, atol=TOLERANCE)

    for name in (ENCODER_FILE, DECODER_FILE):
        proto = onnx.load(str(tmp_path / name))
        onnx.checker.check_model(proto, full_check=True)
        assert nonstandard_ops(proto) == [], name
        assert [entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")] == [17]
        for value in [*proto.graph.input, *proto.graph.output]:
            assert value.type.tensor_type.shape.dim[0].dim_param == "batch", (name, value.name)
    decoder_ops = {node.op_type for node in onnx.load(str(tmp_path / DECODER_FILE)).graph.node}
    assert "Sigmoid" in decoder_ops and ("ConvTranspose" in decoder_ops) == transposed


def test_metadata_is_in_both_models_as_strings_and_json(tmp_path):
    model = small_model("conv28")
    export_model(model, tmp_path, {**METADATA, "dataset": "shapes"})
    for name in (ENCODER_FILE, DECODER_FILE):
        props = read_metadata(tmp_path / name)
        assert props["dataset"] == "shapes" and props["run"] == "r"
        assert {key: json.loads(props[key]) for key in METADATA if key != "run"} == {
            key: value for key, value in METADATA.items() if key != "run"
        }
        assert props.keys() == {*METADATA, "dataset"}


def test_a_cpu_rewrite_that_computes_otherwise_fails_the_check_and_writes_nothing(tmp_path, monkeypatch):
    """PyTorch runs the last layer's CPU rewrite, the ONNX model the stock operator: a wrong rewrite shows."""
    original = layers.transposed_conv_by_taps
    monkeypatch.setattr(layers, "transposed_conv_by_taps", lambda *a, **k: original(*a, **k) + 0.5)
    model = small_model("conv64")
    with pytest.raises(BetaVAEError) as error:
        export_model(model, tmp_path / "out", METADATA)
    message = str(error.value)
    assert message.startswith("decoder.onnx disagrees with PyTorch: largest |ONNX − PyTorch| ")
    assert "bound 1e-04" in message and "\n" not in message
    difference = float(re.search(r"PyTorch\| (\S+) exceeds", message).group(1))
    assert 0.01 < difference < 0.15  # sigmoid(x + 0.5) − sigmoid(x) is at most 0.12
    assert not (tmp_path / "out").exists()


def test_an_altered_weight_in_the_onnx_file_fails_the_check_with_its_size(tmp_path):
    model = small_model("burgess64")
    export_model(model, tmp_path, METADATA)
    check_onnx(model, tmp_path / ENCODER_FILE, tmp_path / DECODER_FILE)  # as written: passes
    proto = onnx.load(str(tmp_path / ENCODER_FILE))
    last_bias = numpy_helper.to_array(proto.graph.initializer[-1])  # the final Gemm's: (2M,)
    assert last_bias.shape == (2 * model.latent_dim,)
    proto.graph.initializer[-1].CopyFrom(
        numpy_helper.from_array(last_bias + np.float32(0.25), proto.graph.initializer[-1].name)
    )
    onnx.save(proto, str(tmp_path / ENCODER_FILE))
    expected = (r"^encoder\.onnx disagrees with PyTorch: "
                r"largest \|ONNX − PyTorch\| 2\.5e-01 exceeds the bound 1e-04")
    with pytest.raises(BetaVAEError, match=expected):
        check_onnx(model, tmp_path / ENCODER_FILE, tmp_path / DECODER_FILE, images=random_images(model, 3))


def test_weights_changed_after_export_fail_the_check_of_the_decoder(tmp_path):
    model = small_model("conv28")
    export_model(model, tmp_path, METADATA)
    with torch.no_grad():
        model.decoder[-1].bias += 3.0
    with pytest.raises(BetaVAEError, match=r"^decoder\.onnx disagrees"):
        check_onnx(model, tmp_path / ENCODER_FILE, tmp_path / DECODER_FILE)


def test_an_output_that_is_nan_never_passes(tmp_path):
    model = small_model("conv28")
    with torch.no_grad():
        model.encoder[-1].bias[0] = float("nan")
    with pytest.raises(BetaVAEError, match=r"^encoder\.onnx disagrees .* nan .*an output is NaN"):
        export_model(model, tmp_path, METADATA)
    assert list(tmp_path.iterdir()) == []


# -- a trained run folder ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
@slow_fixture
def trained(tmp_path_factory, trained_runs) -> Path:
    return trained_runs.copy(ACTIVE_SHAPES, tmp_path_factory.mktemp("export") / "run")


def export_cli(args, capsys):
    code, out, err = run_cli(["export", *args], capsys)
    return code, out.strip().splitlines(), err


def test_export_of_a_run_writes_models_test_images_and_model_json(trained, tmp_path, capsys):
    run = RunDir(shutil.copytree(trained, tmp_path / "run", ignore=shutil.ignore_patterns(".lock")))
    code, lines, err = export_cli([run.path, "--images", "6"], capsys)
    assert code == 0, err
    out = run.path / "export"
    assert lines[0] == f"wrote {out}: {ENCODER_FILE}, {DECODER_FILE}, {TEST_IMAGES_FILE}, {MANIFEST_FILE}"
    for line, name in zip(lines[1:], (ENCODER_FILE, DECODER_FILE), strict=True):
        match = re.fullmatch(rf"{name}: largest \|ONNX − PyTorch\| (\S+) \(bound 1e-04\)", line)
        assert match and float(match.group(1)) <= 1e-4, line

    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert list(manifest) == [
        "format", "run", "arch", "dataset", "objective", "latent_dim", "image_shape", "beta", "beta_norm",
        "step", "kl_per_dim", "metrics", "encoder", "decoder", "test_images", "test_image_count", "check"]
    test = run.read_metrics()["test"]
    assert {key: manifest[key] for key in ("format", "run", "arch", "dataset", "objective", "latent_dim",
                                          "image_shape", "beta", "step", "metrics", "test_image_count")} == {
        "format": 1, "run": "run", "arch": "conv28", "dataset": "shapes", "objective": "beta",
        "latent_dim": 4, "image_shape": [1, 28, 28], "beta": 1.0, "step": 60, "metrics": {},
        "test_image_count": 6}
    assert manifest["beta_norm"] == pytest.approx(1.0 * 4 / (28 * 28))
    assert manifest["kl_per_dim"] == test["kl_per_dim"] and len(manifest["kl_per_dim"]) == 4
    assert manifest["check"]["tolerance"] == 1e-4 and max(
        manifest["check"]["encoder_max_abs_diff"], manifest["check"]["decoder_max_abs_diff"]) <= 1e-4
    for name in (ENCODER_FILE, DECODER_FILE):
        props = read_metadata(out / name)
        described = {key: value for key, value in manifest.items()
                     if key not in ("encoder", "decoder", "test_images", "test_image_count", "check")}
        assert {key: value if isinstance(described[key], str) else json.loads(value)
                for key, value in props.items()} == described

    strip = Image.open(out / TEST_IMAGES_FILE)
    assert strip.mode == "L" and strip.size == (6 * 28, 28)
    # The strip holds held-out images: the first six that reconstructions.png shows as well.
    split = run.read_config().load_dataset().test
    expected = split.images(torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:6])
    pixels = np.asarray(strip)
    assert np.array_equal(pixels, np.concatenate(list(expected[:, 0].numpy()), axis=1))

    # What the page does: encode the strip's images, decode their μ: the trained model's reconstructions.
    images = torch.from_numpy(pixels.reshape(28, 6, 28).transpose(1, 0, 2)[:, None].astype(np.float32) / 255)
    mu, _ = session(out / ENCODER_FILE).run(["mu", "logvar"], {"image": images.numpy()})
    (reconstructed,) = session(out / DECODER_FILE).run(["image"], {"z": mu})
    np.testing.assert_allclose(reconstructed, load_model(run).reconstruct(images).numpy(), rtol=0, atol=1e-4)


def test_export_records_the_headline_score_of_each_evaluated_metric(trained, tmp_path):
    from betavae.demo.export import export_run

    run = RunDir(shutil.copytree(trained, tmp_path / "run", ignore=shutil.ignore_patterns(".lock")))
    run.update_metrics("disentanglement", {"mig": {"mig": 0.25}, "sap": {"sap": None},
                                           "settings": {"mig": {"seed": 0}}}, step=60)
    exported = export_run(run.path, tmp_path / "elsewhere", images=2)
    assert exported.out_dir == tmp_path / "elsewhere" and not (run.path / "export").exists()
    assert exported.manifest["metrics"] == {"mig": 0.25, "sap": None}
    written = json.loads((tmp_path / "elsewhere" / MANIFEST_FILE).read_text())
    assert written["metrics"] == {"mig": 0.25, "sap": None}


def test_a_folder_without_checkpoint_or_a_bad_count_is_a_one_line_error(trained, tmp_path, capsys):
    run = shutil.copytree(trained, tmp_path / "run", ignore=shutil.ignore_patterns(".lock"))
    (run / "checkpoint.pt").unlink()
    code, lines, err = export_cli([run], capsys)
    assert code == 1 and lines == [] and len(err.splitlines()) == 1, err
    assert err.startswith(f"betavae: error: {run} has no checkpoint") and "train it first" in err
    assert not (run / "export" / MANIFEST_FILE).exists()

    code, _, err = export_cli([tmp_path / "missing"], capsys)
    assert code == 1 and len(err.splitlines()) == 1 and "is not a run folder" in err, err

    code, _, err = export_cli([trained, "--images", "0", "--out", tmp_path / "x"], capsys)
    assert code == 1 and err == "betavae: error: --images 0 exports no test image; give --images 1 or more\n"
