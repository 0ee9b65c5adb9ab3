"""Baseline representations, for the β-VAE paper's comparison table (Higgins et al. 2017, Table 1).

A disentanglement score means little alone: the paper compares its models with raw
pixels, PCA and ICA fitted on the data, and an untrained network; the ground-truth
factors give the ceiling. Each baseline here is a representation in the sense of
:mod:`betavae.metrics.representation`, so every metric scores it exactly as it scores a
trained model.
"""

from __future__ import annotations

import numpy as np
import torch

from betavae.data.base import FactorDataset
from betavae.errors import BetaVAEError, unknown_choice
from betavae.metrics.representation import FactorRepresentation, Representation, model_representation

BASELINES = ("pixels", "pca", "ica", "untrained", "factors")


def _flatten(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def pixels() -> Representation:
    """Every pixel in [0, 1] as one code dimension."""
    return _flatten


def _fitting_images(dataset: FactorDataset, num_fit: int, rng: np.random.Generator) -> np.ndarray:
    return _flatten(dataset.render(dataset.sample_factors(num_fit, rng), rng))


def pca(
    dataset: FactorDataset, rng: np.random.Generator, latent_dim: int = 10, num_fit: int = 10_000
) -> Representation:
    """Projections on the first ``latent_dim`` principal components of ``num_fit`` random images."""
    from sklearn.decomposition import PCA

    model = PCA(n_components=latent_dim, random_state=int(rng.integers(2**31)))
    model.fit(_fitting_images(dataset, num_fit, rng))
    return lambda images: model.transform(_flatten(images))


def ica(
    dataset: FactorDataset, rng: np.random.Generator, latent_dim: int = 10, num_fit: int = 10_000
) -> Representation:
    """``latent_dim`` independent components (FastICA) of ``num_fit`` random images.

    On binary sprite images FastICA often reaches its 400 iterations before its tolerance;
    the unmixing it has then is still a linear map of the pixels, which is all the baseline
    claims to be (the paper's own ICA score spreads ±10.6 points over runs), so scikit-learn's
    warning about it is not passed on. It is fitted on the pixels that vary in its sample: on
    5,000 dSprites images (a sixth of whose pixels are never lit) scikit-learn's FastICA ended in
    a component of zero spread and NaN weights for every seed tried, which the constant pixels,
    carrying nothing, no longer bring about. Its whitening takes the eigenvectors of the pixels'
    covariance when there are at least as many images as pixels (scikit-learn's ``eigh``: the same
    components as the default SVD of the whole sample, three times faster on 5,000 dSprites images),
    the SVD otherwise; that the covariance has eigenvalues near zero (the pixels are more than the
    sample's rank), which scikit-learn then warns of, does not touch the few largest that are kept.
    """
    import warnings

    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    random_state = int(rng.integers(2**31))
    fitting = _fitting_images(dataset, num_fit, rng)
    varying = fitting.std(axis=0) > 0
    model = FastICA(n_components=latent_dim, whiten="unit-variance", max_iter=400, random_state=random_state,
                    whiten_solver="eigh" if len(fitting) >= varying.sum() else "svd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", "There are some small singular values", UserWarning)
        model.fit(fitting[:, varying])
    return lambda images: model.transform(_flatten(images)[:, varying])


def untrained(
    dataset: FactorDataset,
    rng: np.random.Generator,
    latent_dim: int = 10,
    arch: str | None = None,
    device: str | torch.device = "cpu",
) -> Representation:
    """μ of a randomly initialised encoder of architecture ``arch`` (None: the dataset's default one)."""
    from betavae import models

    torch.manual_seed(int(rng.integers(2**31)))
    arch = arch or models.default_arch(dataset.image_shape[-1])
    model = models.build(arch, latent_dim, dataset.image_shape).to(device).eval()
    return model_representation(model)


def baseline(
    name: str,
    dataset: FactorDataset,
    rng: np.random.Generator,
    latent_dim: int = 10,
    device: str | torch.device = "cpu",
    num_fit: int = 10_000,
    arch: str | None = None,
) -> Representation:
    """The baseline representation called ``name`` (one of :data:`BASELINES`); PCA and ICA are fitted
    on ``num_fit`` random images, ``untrained`` is an encoder of architecture ``arch`` (None: the one the
    dataset trains with by default).

    The paper's "VAE untrained" row is its own fully connected network with ten latents untrained
    (as recalled from its appendix; docs/notes/paper-baselines-protocol.md): ``arch="fc"``, where
    the default on dSprites is conv64. Its PCA and ICA keep ten components, as ``latent_dim``'s
    default does.
    """
    if arch is not None and name != "untrained":
        raise BetaVAEError(f"an architecture is chosen for the untrained baseline only, not for {name}")
    if name == "pixels":
        return pixels()
    if name == "pca":
        return pca(dataset, rng, latent_dim, num_fit)
    if name == "ica":
        return ica(dataset, rng, latent_dim, num_fit)
    if name == "untrained":
        return untrained(dataset, rng, latent_dim, arch=arch, device=device)
    if name == "factors":
        return FactorRepresentation(dataset)
    raise unknown_choice("baseline", name, BASELINES)
