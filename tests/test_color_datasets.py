"""Colour images end to end: color_dsprites and noisy_dsprites, 3-channel models, and RGB figures."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from betavae import data, evaluation, metrics
from betavae.data.dsprites import load_dsprites
from betavae.errors import BetaVAEError
from betavae.metrics.baselines import pca
from betavae.metrics.representation import CodeTable, model_representation
from betavae.metrics.settings import metric_generator
from betavae.models import ARCHITECTURES, build
from betavae.models.layers import transposed_conv_by_taps
from betavae.objectives.base import reconstruction_loss
from betavae.runs import RunDir
from betavae.training.batches import BatchStream
from betavae.viz.sweep import plot_sweep
from commands import betavae, run_cli
from marks import slow_fixture

CPU = torch.device("cpu")
VARIANTS = ("color_dsprites", "noisy_dsprites")


@pytest.fixture(scope="module")
def dsprites():
    return load_dsprites(test_size=100, seed=3)


@pytest.fixture(scope="module")
def variants():
    return {name: data.load(name, test_size=100, seed=3) for name in VARIANTS}


def some_factors(dataset, n=64, seed=0):
    return dataset.sample_factors(n, np.random.default_rng(seed))


def lit(images):
    """Where a sprite mask (n, 1, H, W) is on, broadcast over channels."""
    return np.broadcast_to(images > 0, (len(images), 3, *images.shape[2:]))


@pytest.mark.parametrize("name", VARIANTS)
def test_each_variant_is_dsprites_factors_and_split_in_rgb(name, variants, dsprites):
    dataset = variants[name]
    assert dataset.image_shape == data.entry(name).image_shape == (3, 64, 64) and data.has_factors(name)
    assert dataset.num_pixels == 3 * 64 * 64 and dataset.has_nuisance and not dsprites.has_nuisance
    assert dataset.factor_names == dsprites.factor_names and dataset.factor_sizes == dsprites.factor_sizes
    for k in range(dataset.num_factors):
        assert np.array_equal(dataset.factor_values(k), dsprites.factor_values(k))
    assert np.array_equal(dataset.train.indices, dsprites.train.indices)
    assert np.array_equal(dataset.test.indices, dsprites.test.indices)
    assert dataset.train.image_shape == (3, 64, 64)


@pytest.mark.parametrize("name", VARIANTS)
def test_one_generator_seed_gives_one_set_of_images_and_another_other_nuisance_on_the_same_sprites(
    name, variants, dsprites
):
    dataset = variants[name]
    factors = some_factors(dataset)
    first = dataset.render(factors, np.random.default_rng(7))
    assert first.shape == (64, 3, 64, 64) and first.dtype == np.uint8
    assert np.array_equal(first, dataset.render(factors, np.random.default_rng(7)))
    other = dataset.render(factors, np.random.default_rng(8))
    assert not np.array_equal(first, other)
    sprite = lit(dsprites.render(factors))
    for images in (first, other):
        if name == "noisy_dsprites":
            assert (images[sprite] == 255).all()  # the sprite is white whatever the noise under it
        else:
            assert np.array_equal(images > 0, sprite)  # lit exactly where the sprite is
    index = dataset.factors_to_index(factors)
    assert np.array_equal(dataset.images_at(index, np.random.default_rng(7)), first)
    with pytest.raises(ValueError, match="pass a numpy Generator"):
        dataset.render(factors)


def test_colour_sprites_have_one_colour_each_in_half_to_full_intensity_on_black(variants, dsprites):
    dataset = variants["color_dsprites"]
    factors = some_factors(dataset, n=2000)
    images = dataset.render(factors, np.random.default_rng(0))
    sprite = lit(dsprites.render(factors))
    assert (images[~sprite] == 0).all()
    on_sprite = np.where(sprite, images, 0).reshape(len(images), 3, -1)
    colours = on_sprite.max(axis=2)  # each image's colour, per channel
    assert ((on_sprite == colours[:, :, None]) | (on_sprite == 0)).all()  # one colour per sprite
    assert colours.min() >= 128 and colours.max() == 255  # [0.5, 1]·255 to the nearest level
    # Uniform in [0.5, 1]: mean 0.75·255, each channel drawn on its own (no grey sprites).
    assert abs(colours.mean() - 0.75 * 255) < 3
    assert abs(np.corrcoef(colours.T.astype(float))[0, 1]) < 0.1
    assert (colours[:, 0] != colours[:, 1]).mean() > 0.9


def test_noisy_sprites_are_white_on_uniform_noise_that_differs_per_channel(variants, dsprites):
    dataset = variants["noisy_dsprites"]
    factors = some_factors(dataset, n=200)
    images = dataset.render(factors, np.random.default_rng(0))
    sprite = lit(dsprites.render(factors))
    assert (images[sprite] == 255).all()
    background = images[~sprite]
    assert abs(background.mean() - 127.5) < 1 and background.min() == 0 and background.max() == 255
    assert np.bincount(background, minlength=256).min() > 0.8 * background.size / 256  # all 256 levels alike
    assert (images[:, 0] != images[:, 1]).mean() > 0.9


@pytest.mark.parametrize("name", VARIANTS)
def test_a_training_read_draws_the_same_images_again_and_a_resumed_stream_the_batches_of_an_uninterrupted_one(
    name, variants
):
    split = variants[name].train
    positions = torch.arange(100, 132)
    assert torch.equal(split.images(positions), split.images(positions))
    assert torch.equal(split.to(CPU).images(positions), split.images(positions))
    # The same positions read in another grouping are drawn afresh: training sees new nuisance.
    assert not torch.equal(split.images(torch.arange(100, 164))[:32], split.images(positions))
    # Batches of 64 are read 16 steps a call: steps 14 to 17 span two reads.
    with BatchStream(split, 64, seed=1, start=0, device=CPU) as stream:
        uninterrupted = [stream.next() for _ in range(18)][14:]
    with BatchStream(split, 64, seed=1, start=14, device=CPU) as stream:
        resumed = [stream.next() for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted, resumed, strict=True))


def colour_and_position(images: np.ndarray, level: int = 128) -> np.ndarray:
    """A small code in [0, 1]: each channel's mean, and the centroid of the pixels whose every
    channel reaches ``level`` (128: a colour sprite; 255: a white sprite on noise)."""
    flat = images.reshape(len(images), 3, -1)
    bright = (images.min(axis=1) >= level).reshape(len(images), -1)
    grid = np.indices((64, 64)).reshape(2, -1) / 64
    centroid = bright @ grid.T / np.maximum(bright.sum(axis=1, keepdims=True), 1)
    return np.concatenate([flat.mean(axis=2) / 255, centroid], axis=1)


# Small sizes: a few thousand images in all.
METRIC_SIZES = {
    "beta_vae": {"batch_size": 8, "n_train": 100, "n_eval": 50},
    "factor_vae": {"batch_size": 8, "n_train": 100, "n_eval": 50, "num_variance_estimate": 300},
    "mig": {"n_train": 300},
    "dci": {"n_train": 100, "n_eval": 50},
    "sap": {"n_train": 200, "n_eval": 100},
}


def scores(dataset, seed):
    """Every metric of the colour-and-position code, each drawing from its own generator of ``seed``."""
    return {
        name: metrics.get(name).compute(
            dataset, code_of(dataset), metric_generator(seed, name), **METRIC_SIZES[name]
        )
        for name in metrics.ALL_METRICS
    }


def code_of(dataset):
    level = 255 if dataset.name == "noisy_dsprites" else 128
    return lambda images: colour_and_position(images, level)


@pytest.mark.parametrize("name", VARIANTS)
def test_every_metric_gives_the_same_numbers_for_a_seed_and_others_for_another(name, variants):
    dataset = variants[name]
    first = scores(dataset, 0)
    assert first == scores(dataset, 0)
    again = metrics.get("mig").compute(dataset, code_of(dataset), metric_generator(1, "mig"),
                                       **METRIC_SIZES["mig"])
    assert again != first["mig"]
    # The centroid carries position; the colour or the noise carries no factor.
    assert first["mig"]["mig_pos_x"] > 0.3 and first["mig"]["mig_shape"] < 0.05
    fitted = [pca(dataset, np.random.default_rng(5), latent_dim=3, num_fit=200) for _ in range(2)]
    factors = some_factors(dataset, n=20)
    images = dataset.render(factors, np.random.default_rng(1))
    assert np.array_equal(fitted[0](images), fitted[1](images))


def test_a_dataset_with_nuisance_gets_no_code_table(variants):
    dataset = variants["noisy_dsprites"]
    assert evaluation.cheapest_representation(dataset, colour_and_position, 10**9) is colour_and_position
    with pytest.raises(ValueError, match="freeze one draw"):
        CodeTable(dataset, colour_and_position)


def test_a_variant_refuses_in_memory_and_says_which_options_it_has():
    with pytest.raises(BetaVAEError, match="no option in_memory; its options are: path, test_size, seed"):
        data.load("color_dsprites", in_memory=True)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_a_three_channel_model_of_every_architecture_decodes_rgb_and_sums_its_loss_over_every_value(arch):
    size = ARCHITECTURES[arch].image_size
    torch.manual_seed(0)
    model = build(arch, 4, (3, size, size))
    x = torch.rand(2, 3, size, size)
    output = model(x)
    assert output.logits.shape == (2, 3, size, size) and model.decode(output.mu).shape == (2, 3, size, size)
    values = 3 * size * size
    zero = torch.zeros(2, 3, size, size)
    half, white = torch.full_like(zero, 0.5), torch.ones_like(zero)
    assert torch.allclose(reconstruction_loss(zero, half, "bernoulli"), torch.full((2,), values * np.log(2)))
    assert torch.allclose(reconstruction_loss(zero, white, "gaussian"), torch.full((2,), values * 0.25))
    loss = reconstruction_loss(output.logits, x, "bernoulli").mean()
    loss.backward()
    weighted = (torch.nn.Conv2d, torch.nn.Linear)
    first = next(layer for layer in model.encoder.modules() if isinstance(layer, weighted))
    # every input channel learns (fc's first layer takes the image flattened channel by channel)
    assert (first.weight.grad.abs().reshape(len(first.weight), 3, -1).sum(dim=(0, 2)) > 0).all()
    images = (x * 255).round().to(torch.uint8).numpy()
    with torch.no_grad():
        mu, _ = model.eval().encode(torch.from_numpy(images).float() / 255)
    assert np.allclose(model_representation(model)(images), mu.numpy(), atol=1e-4)


def test_the_transposed_convolution_by_taps_is_exact_for_three_output_channels():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 32, 16, 16, generator=generator, dtype=torch.float64)
    weight = torch.randn(32, 3, 4, 4, generator=generator, dtype=torch.float64)
    bias = torch.randn(3, generator=generator, dtype=torch.float64)
    expected = F.conv_transpose2d(x, weight, bias, stride=2, padding=1)
    assert torch.allclose(transposed_conv_by_taps(x, weight, bias, (2, 2), (1, 1)), expected)


# --- Through the command line, on models trained a few steps ---------------------------------------


@pytest.fixture(scope="module")
@slow_fixture
def colour_runs(tmp_path_factory):
    """A conv64 run of 5 steps on each variant, trained by ``betavae train``."""
    folder = tmp_path_factory.mktemp("colour")
    for name in VARIANTS:
        betavae("train", "--dataset", name, "--arch", "conv64", "--latent", 4, "--steps", 5,
                "--batch-size", 8, "--test-size", 50, "--out", folder / name, "--device", "cpu",
                "--no-progress")
    return folder


def rgb(path) -> np.ndarray:
    image = Image.open(path)
    assert image.mode == "RGB"
    return np.asarray(image)


def coloured(pixels: np.ndarray) -> bool:
    """Whether an RGB picture holds colour, not only grey."""
    return max((pixels[..., 0] != pixels[..., 1]).mean(), (pixels[..., 1] != pixels[..., 2]).mean()) > 0.01


@pytest.mark.parametrize("name", VARIANTS)
def test_training_writes_a_colour_run_and_evaluate_scores_its_mig_the_same_twice(name, colour_runs, capsys):
    run = RunDir(colour_runs / name)
    assert tuple(run.read_derived().image_shape) == (3, 64, 64) and run.read_derived().num_pixels == 12288
    assert coloured(rgb(run.path / "reconstructions.png"))
    scores = []
    for _ in range(2):
        code, out, err = run_cli(
            ["evaluate", run.path, "--metrics", "mig", "--n-train", 300, "--json"], capsys
        )
        assert code == 0, err
        scores.append(json.loads(out))
    assert scores[0] == scores[1]
    assert run.read_metrics()["disentanglement"]["mig"]["mig"] is not None


def test_every_figure_of_a_colour_run_is_in_colour(colour_runs, capsys, tmp_path):
    run = colour_runs / "color_dsprites"
    for args in (["recon", run, "--n", 4], ["samples", run],
                 ["traverse", run, "--gif", "--steps", 3], ["factors", run, "--points", 300], ["kl", run]):
        code, out, err = run_cli(["show", *args], capsys)
        assert code == 0, err
    recon = rgb(run / "show-recon.png")
    assert recon.shape[1] == 2 * (64 * 4 + 2) + 2  # inputs and reconstructions, 64 px upscaled 4×
    assert coloured(recon)
    samples = rgb(run / "samples.png")
    assert samples.shape == (8 * (64 * 4 + 2) + 2,) * 2 + (3,) and coloured(samples)
    assert coloured(rgb(run / "traversal.png"))
    gif = Image.open(run / "traversal.gif")
    assert gif.n_frames == 4 and coloured(np.asarray(gif.convert("RGB")))
    assert (run / "factors.svg").stat().st_size > 0 and (run / "kl.svg").stat().st_size > 0
    rows = [{"run": run.name, "status": "done", "dataset": run.name, "latent_dim": 4, "beta_norm": 0.1,
             "beta": 1.0, "seed": 0, "test.loss": 1.0}]
    paths = plot_sweep(colour_runs, rows, ["beta_norm", "seed"], out=tmp_path / "figures")
    assert coloured(rgb(next(path for path in paths if path.name == "recon_z4.png")))
    code, _, err = run_cli(["export", run, "--out", tmp_path / "export", "--images", 4], capsys)
    assert code == 0, err
    assert coloured(rgb(tmp_path / "export" / "test_images.png"))


def test_transfer_to_a_factor_of_a_colour_run_gives_the_same_numbers_twice(colour_runs, capsys, tmp_path):
    tables = []
    for out in (tmp_path / "a", tmp_path / "b"):
        code, printed, err = run_cli(["transfer", colour_runs / "noisy_dsprites", "--task", "factor:shape",
                                      "--labels", 20, "--repeats", 1, "--baselines", "pixels", "--out", out],
                                     capsys)
        assert code == 0, err
        assert "task factor:shape" in printed and "pixels loss" in printed
        tables.append((out / "transfer.csv").read_text())
    assert tables[0] == tables[1]  # the held-out images' noise is drawn the same way each time
