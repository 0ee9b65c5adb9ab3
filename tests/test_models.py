"""Shapes through every architecture, and the errors a wrong input gives."""

import pytest
import torch

from betavae.errors import BetaVAEError
from betavae.models import ARCHITECTURES, build, default_arch


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_architecture_maps_images_to_codes_and_back(arch, channels):
    size = ARCHITECTURES[arch].image_size
    model = build(arch, latent_dim=7, image_shape=(channels, size, size))
    x = torch.rand(5, channels, size, size)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 7)
    out = model(x)
    assert out.logits.shape == x.shape
    assert out.z.shape == (5, 7)
    decoded = model.decode(out.z)
    assert decoded.shape == x.shape and decoded.min() >= 0 and decoded.max() <= 1
    assert model.sample(3).shape == (3, channels, size, size)


def test_conv64_and_burgess64_have_the_published_layer_widths():
    conv64 = build("conv64", 10, (1, 64, 64))
    widths = [m.out_channels for m in conv64.encoder if isinstance(m, torch.nn.Conv2d)]
    assert widths == [32, 32, 64, 64]
    dense = [m.out_features for m in conv64.encoder if isinstance(m, torch.nn.Linear)]
    assert dense == [256, 20]
    burgess = build("burgess64", 10, (1, 64, 64))
    assert [m.out_channels for m in burgess.encoder if isinstance(m, torch.nn.Conv2d)] == [32] * 4
    assert [m.out_features for m in burgess.encoder if isinstance(m, torch.nn.Linear)] == [256, 256, 20]
    kinds = {type(m) for m in burgess.decoder}
    assert torch.nn.ConvTranspose2d in kinds and torch.nn.Conv2d not in kinds


def test_conv28_mirrors_max_pooling_with_nearest_upsampling():
    model = build("conv28", 4, (1, 28, 28))
    encoder_kinds = [type(m).__name__ for m in model.encoder]
    decoder_kinds = [type(m).__name__ for m in model.decoder]
    assert encoder_kinds.count("MaxPool2d") == decoder_kinds.count("Upsample") == 2
    assert all(m.mode == "nearest" for m in model.decoder if isinstance(m, torch.nn.Upsample))
    transposed = [m for m in model.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(transposed) == encoder_kinds.count("Conv2d") == 2


def test_reparameterisation_is_mean_plus_scaled_noise():
    mu = torch.tensor([[1.0, -2.0]])
    logvar = torch.log(torch.tensor([[4.0, 0.25]]))
    generator = torch.Generator().manual_seed(3)
    z = build("conv28", 2, (1, 28, 28)).reparameterize(
        mu.expand(20000, 2), logvar.expand(20000, 2), generator
    )
    assert torch.allclose(z.mean(0), mu[0], atol=0.05)
    assert torch.allclose(z.std(0), torch.tensor([2.0, 0.5]), atol=0.05)


def test_wrong_image_size_for_an_architecture_names_the_fitting_one():
    with pytest.raises(
        BetaVAEError, match=r"conv64 takes 64×64 images, but the data is 28×28; use --arch conv28"
    ):
        build("conv64", 10, (1, 28, 28))


def test_wrongly_shaped_batch_is_a_clear_error_not_a_shape_traceback():
    model = build("conv28", 3, (1, 28, 28))
    with pytest.raises(BetaVAEError, match=r"expects images of shape \(B, 1, 28, 28\), got \(2, 3, 28, 28\)"):
        model.encode(torch.rand(2, 3, 28, 28))


def test_unknown_architecture_lists_the_choices():
    with pytest.raises(BetaVAEError, match="choose one of: burgess64, conv28, conv64"):
        build("resnet", 3, (1, 28, 28))


def test_default_architecture_follows_image_size():
    assert default_arch(28) == "conv28"
    assert default_arch(64) == "conv64"
