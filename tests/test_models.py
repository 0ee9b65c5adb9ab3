"""Shapes through every architecture, and the errors a wrong input gives."""

import hashlib

import pytest
import torch
import torch.nn.functional as F

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


def test_conv64_dlib_has_2x2_kernels_in_its_last_two_convolutions():
    """disentanglement_lib's conv_encoder: 4×4, 4×4, 2×2, 2×2 stride-2 convolutions, 64→32→16→8→4."""
    model = build("conv64_dlib", 10, (1, 64, 64))
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size, m.stride, m.padding) for m in convs] == [
        (32, (4, 4), (2, 2), (1, 1)),
        (32, (4, 4), (2, 2), (1, 1)),
        (64, (2, 2), (2, 2), (0, 0)),
        (64, (2, 2), (2, 2), (0, 0)),
    ]
    assert [m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)] == [256, 20]
    x = torch.rand(3, 1, 64, 64)
    flatten = next(i for i, m in enumerate(model.encoder) if isinstance(m, torch.nn.Flatten))
    assert model.encoder[:flatten](x).shape == (3, 64, 4, 4)
    assert model.encoder(x).shape == (3, 20)
    # the decoder is conv64's: FC 256, FC 4·4·64, four 4×4 transposed convolutions
    assert model.decoder(torch.randn(3, 10)).shape == (3, 1, 64, 64)
    deconvs = [m for m in model.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in deconvs] == [64, 32, 32, 1]
    assert {m.kernel_size for m in deconvs} == {(4, 4)}


def _fingerprint(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize(
    "arch, channels, parameters, fingerprint",
    [
        ("conv64", 1, 764245, "5742ca3b8fb549e2"),
        ("conv64", 3, 766295, "caf850c7c30f435d"),
        ("burgess64", 1, 502005, "ea4649f76f1ebf47"),
        ("burgess64", 3, 504055, "301f13fae93fc009"),
    ],
)
def test_conv64_and_burgess64_keep_their_initial_weights(arch, channels, parameters, fingerprint):
    """Bit for bit what they were before the per-layer kernel sizes (conv64_dlib) came in.

    The fingerprint hashes every parameter's name, shape and initial values under seed 0, so a
    layer added, reordered or initialised differently changes it; runs and checkpoints of
    either architecture stay comparable with earlier ones.
    """
    torch.manual_seed(0)
    model = build(arch, 10, (channels, 64, 64))
    assert sum(p.numel() for p in model.parameters()) == parameters
    assert _fingerprint(model) == fingerprint


def test_conv64_dlib_trains_a_step():
    torch.manual_seed(0)
    model = build("conv64_dlib", 6, (1, 64, 64))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = (torch.rand(8, 1, 64, 64) > 0.7).float()
    before = [p.detach().clone() for p in model.parameters()]
    out = model(x)
    reconstruction = F.binary_cross_entropy_with_logits(out.logits, x, reduction="sum") / len(x)
    kl = 0.5 * (out.mu.square() + out.logvar.exp() - 1 - out.logvar).sum(1).mean()
    loss = reconstruction + 4 * kl
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


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
    with pytest.raises(BetaVAEError, match="choose one of: burgess64, conv28, conv64, conv64_dlib, fc$"):
        build("resnet", 3, (1, 28, 28))


def test_default_architecture_follows_image_size():
    assert default_arch(28) == "conv28"
    assert default_arch(64) == "conv64"
