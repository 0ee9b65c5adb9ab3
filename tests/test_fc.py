"""The paper's fully connected 2D-shapes network (``fc``): its layers and size against the reference,
and a run of it that trains on dSprites from the command line, resumes, exports and is evaluated."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

from betavae.demo.export import DECODER_FILE, export_run
from betavae.models import ARCHITECTURES, build
from betavae.runs import RunDir, load_model
from commands import betavae, run_cli
from marks import slow_fixture
from runfolders import assert_same_weights


def reference_layers(latent_dim: int, channels: int) -> list[tuple[str, int, int, str | None]]:
    """disentanglement_lib's fc_encoder then fc_decoder as (kind, inputs, outputs, activation).

    google-research/disentanglement_lib, disentanglement_lib/methods/shared/architectures.py:
    flatten; dense 1200 relu ("e1"); dense 1200 relu ("e2"); dense M (means) and dense M
    (log_var) from e2, which are our one dense layer of 2M; then dense 1200 tanh three times and
    dense 64·64·C without activation, reshaped to the image.
    """
    pixels = channels * 64 * 64
    return [
        ("flatten", pixels, pixels, None),
        ("dense", pixels, 1200, "relu"),
        ("dense", 1200, 1200, "relu"),
        ("dense", 1200, 2 * latent_dim, None),
        ("dense", latent_dim, 1200, "tanh"),
        ("dense", 1200, 1200, "tanh"),
        ("dense", 1200, 1200, "tanh"),
        ("dense", 1200, pixels, None),
        ("reshape", pixels, pixels, None),
    ]


def layer_list(model) -> list[tuple[str, int, int, str | None]]:
    """Our encoder then decoder in :func:`reference_layers`' terms: each dense layer with the activation
    after it."""
    names = {nn.ReLU: "relu", nn.Tanh: "tanh"}
    layers = [*model.encoder, *model.decoder]
    listed = []
    pixels = int(np.prod(model.image_shape))
    for index, layer in enumerate(layers):
        following = layers[index + 1] if index + 1 < len(layers) else None
        if isinstance(layer, nn.Linear):
            listed.append(("dense", layer.in_features, layer.out_features, names.get(type(following))))
        elif isinstance(layer, nn.Flatten):
            listed.append(("flatten", pixels, pixels, None))
        elif isinstance(layer, nn.Unflatten):
            listed.append(("reshape", pixels, pixels, None))
        else:
            assert type(layer) in names, layer  # nothing but the activations between them
    return listed


@pytest.mark.parametrize("channels", [1, 3])
def test_fc_has_disentanglement_libs_layers(channels):
    model = build("fc", 10, (channels, 64, 64))
    assert layer_list(model) == reference_layers(10, channels)


def test_fc_has_the_hand_counted_number_of_parameters():
    # Each dense layer holds inputs·outputs weights and outputs biases; M = 10, one channel (4,096 pixels).
    encoder = (4096 * 1200 + 1200) + (1200 * 1200 + 1200) + (1200 * 20 + 20)
    assert encoder == 4_916_400 + 1_441_200 + 24_020 == 6_381_620
    decoder = (10 * 1200 + 1200) + 2 * (1200 * 1200 + 1200) + (1200 * 4096 + 4096)
    assert decoder == 13_200 + 2_882_400 + 4_919_296 == 7_814_896
    model = build("fc", 10, (1, 64, 64))
    assert sum(p.numel() for p in model.encoder.parameters()) == encoder
    assert sum(p.numel() for p in model.decoder.parameters()) == decoder
    assert sum(p.numel() for p in model.parameters()) == 14_196_516
    # Three channels: the first layer takes 12,288 inputs and the last gives 12,288 outputs.
    colour = 14_196_516 + 2 * 8192 * 1200 + 8192  # 8,192 more inputs and outputs, each with 1,200 weights
    assert colour == 33_865_508
    assert sum(p.numel() for p in build("fc", 10, (3, 64, 64)).parameters()) == colour


def test_fc_takes_images_to_codes_and_back_through_1200_units():
    model = build("fc", 6, (1, 64, 64))
    shapes, x = [], torch.rand(5, 1, 64, 64)
    for layer in model.encoder:
        x = layer(x)
        shapes.append(tuple(x.shape))
    z = torch.randn(5, 6)
    for layer in model.decoder:
        z = layer(z)
        shapes.append(tuple(z.shape))
    assert shapes == [(5, 4096), (5, 1200), (5, 1200), (5, 1200), (5, 1200), (5, 12),  # flatten, e1, e2, 2M
                      *[(5, 1200)] * 6, (5, 4096), (5, 1, 64, 64)]  # d1–d3 with their tanh, d4, reshape
    assert ARCHITECTURES["fc"].image_size == 64 and ARCHITECTURES["fc"].lr == 1e-4


# -- a run of fc on dSprites from the command line -----------------------------------------------------------

# A few steps of batch 8: enough to change every weight, checkpoint, resume and export.
RUN = ["--arch", "fc", "--dataset", "dsprites", "--latent", "4", "--steps", "6", "--batch-size", "8",
       "--checkpoint-every", "3", "--log-every", "3", "--test-size", "64", "--device", "cpu"]


@pytest.fixture(scope="module")
@slow_fixture
def fc_run(tmp_path_factory):
    """``betavae train --arch fc --dataset dsprites``, six steps."""
    out = tmp_path_factory.mktemp("fc") / "whole"
    betavae("train", *RUN, "--out", out)
    return out


def test_fc_trains_on_dsprites_from_the_command_line(fc_run):
    run = RunDir(fc_run)
    assert run.read_config().arch == "fc" and run.read_derived().lr == 1e-4
    log = [json.loads(line) for line in run.log_path.read_text().splitlines()]
    assert [entry["step"] for entry in log] == [3, 6]
    assert all(np.isfinite(entry["loss"]) for entry in log)
    torch.manual_seed(0)  # train() initialises the model from the run's seed
    start = build("fc", 4, (1, 64, 64)).state_dict()
    trained = run.load_checkpoint()["model"]
    assert all(not torch.equal(trained[name], start[name]) for name in start)


def test_fc_resumed_ends_with_the_weights_of_an_uninterrupted_run(fc_run, tmp_path):
    parts = tmp_path / "parts"
    betavae("train", *RUN, "--steps", "3", "--out", parts)
    betavae("train", *RUN, "--out", parts, "--resume")
    assert_same_weights(RunDir(fc_run).load_checkpoint()["model"], RunDir(parts).load_checkpoint()["model"])


def test_an_fc_run_exports_a_decoder_that_computes_pytorchs(fc_run, tmp_path):
    exported = export_run(fc_run, tmp_path / "export", images=4)
    assert exported.check.decoder_max_abs_diff <= 1e-4
    model = load_model(RunDir(fc_run), "cpu").eval()
    codes = torch.randn((7, 4), generator=torch.Generator().manual_seed(1))
    session = onnxruntime.InferenceSession(str(tmp_path / "export" / DECODER_FILE),
                                           providers=["CPUExecutionProvider"])
    (decoded,) = session.run(["image"], {"z": codes.numpy()})
    with torch.no_grad():
        expected = torch.sigmoid(model.decoder(codes)).numpy()
    np.testing.assert_allclose(decoded, expected, rtol=0, atol=1e-4)


def test_an_fc_run_is_evaluated_by_the_metrics(fc_run, capsys):
    code, out, err = run_cli(["evaluate", fc_run, "--metrics", "mig", "--n-train", 300, "--json"], capsys)
    assert code == 0, err
    assert 0 <= json.loads(out)["mig"]["mig"] <= 1
