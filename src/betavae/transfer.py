"""Few-label transfer: does a disentangled encoder make learning from few labels easier?

Higgins et al. (2017, β-VAE, ICLR) conjectured that it does; the reproducibility report
tested it on MNIST with a frozen encoder and one linear softmax layer on its posterior
mean μ, plotting the test loss against the number of labelled samples for several β and
latent sizes, and found no improvement. This is the library behind ``betavae transfer``.

For every representation (each run's μ, and the baselines: raw pixels, PCA with the
runs' latent size, an untrained encoder) a multinomial logistic regression is fitted on
``n`` labelled training images, drawn class-balanced per repeat, and scored on the
held-out test set by cross-entropy and accuracy. The labelled samples depend only on
the seed and the repeat, so every representation is fitted on the same images.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from betavae import data
from betavae.checks import check_seed
from betavae.data.base import ImageDataset, ImageSplit
from betavae.device import resolve_device
from betavae.errors import BetaVAEError, unknown_choice
from betavae.files import claim_file, made_by_betavae, make_folder, record_file, write_file
from betavae.generators import named_generator
from betavae.metrics.representation import ENCODE_CHUNK, Representation, model_representation
from betavae.runs import RunDir, common_parent, load_model, shared_dataset
from betavae.viz.transfer import Score, TransferCurve, transfer_figure

CSV_FILE = "transfer.csv"
PLOT_FILE = "transfer.svg"
SUMMARY_FILE = "transfer.txt"
# Who wrote those three files, in the mark of a folder of the user's (betavae.files).
KIND = "betavae transfer"
COLUMNS = ("run", "beta", "beta_norm", "latent_dim", "n", "repeat", "loss", "accuracy")
TRANSFER_BASELINES = ("pixels", "pca", "untrained")
# Training images PCA is fitted on (a seeded subset when the split is larger).
PCA_FIT_IMAGES = 10_000
# Which run the summary compares the best one with, as transfer.txt states it (reference_run follows it).
REFERENCE_RULE = ("for each latent size M, the run whose β is closest to 1 on a log scale "
                  "(smallest |ln β|; a tie goes to the smaller β)")


@dataclass
class TransferResult:
    """The rows written to ``transfer.csv``, where the three outputs are, and the summary text."""

    rows: list[dict[str, Any]]
    csv_path: Path
    plot_path: Path
    summary_path: Path
    summary: str


@dataclass
class _Series:
    """One representation to score: its CSV identity and its code function."""

    run: str
    beta: float | None
    beta_norm: float | None
    latent_dim: int
    represent: Representation


def task_labels(dataset: ImageDataset, task: str | None) -> tuple[str, np.ndarray, np.ndarray]:
    """(task name, train labels, test labels) for ``digit``, ``factor:NAME`` or ``attr:NAME`` on ``dataset``.

    ``attr:NAME`` labels each image 1 where it has the binary attribute NAME (CelebA's
    Smiling, …), else 0.
    """
    has_attributes = data.entry(dataset.name).has_attributes
    if task is None:
        if dataset.train.labels() is None:
            if has_attributes:
                raise BetaVAEError(f"dataset {dataset.name!r} has no digit labels; pass --task attr:NAME "
                                   f"with NAME one of: {', '.join(dataset.attribute_names)}")
            factor_names = getattr(dataset, "factor_names", ())
            raise BetaVAEError(f"dataset {dataset.name!r} has no digit labels; pass --task factor:NAME "
                               f"with NAME one of: {', '.join(factor_names)}")
        task = "digit"
    if task == "digit":
        train_labels, test_labels = dataset.train.labels(), dataset.test.labels()
        if train_labels is None or test_labels is None:
            instead = "attr:NAME" if has_attributes else "factor:NAME on a dataset with known factors"
            raise BetaVAEError(f"task 'digit' needs class labels, which dataset {dataset.name!r} has not; "
                               f"use --task {instead}")
        return task, np.asarray(train_labels), np.asarray(test_labels)
    if task.startswith("factor:"):
        name = task.removeprefix("factor:")
        if not data.has_factors(dataset.name):
            instead = "attr:NAME" if has_attributes else "digit"
            raise BetaVAEError(
                f"task {task!r} needs known generative factors, which dataset {dataset.name!r} "
                f"has not; use --task {instead}, or train on {' or '.join(data.with_factors())}"
            )
        if name not in dataset.factor_names:  # type: ignore[attr-defined]
            raise unknown_choice(f"factor of {dataset.name}", name, dataset.factor_names)  # type: ignore[attr-defined]
        k = dataset.factor_names.index(name)  # type: ignore[attr-defined]
        return task, dataset.train.factors()[:, k], dataset.test.factors()[:, k]  # type: ignore[attr-defined]
    if task.startswith("attr:"):
        name = task.removeprefix("attr:")
        if not has_attributes:
            raise BetaVAEError(
                f"task {task!r} needs named binary attributes, which dataset {dataset.name!r} has not; "
                f"attributes are tasks on {' or '.join(data.with_attributes())}"
            )
        train_attributes, test_attributes = dataset.train.attributes(), dataset.test.attributes()
        if name not in dataset.attribute_names or train_attributes is None or test_attributes is None:
            raise unknown_choice(f"attribute of {dataset.name}", name, dataset.attribute_names)
        k = dataset.attribute_names.index(name)
        return task, train_attributes[:, k], test_attributes[:, k]
    raise BetaVAEError(
        f"unknown task {task!r}; use 'digit' or 'factor:NAME' (e.g. factor:shape) or 'attr:NAME' "
        f"(e.g. attr:Smiling)"
    )


def balanced_sample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` positions drawn without replacement, n // K per class and the remainder on random classes."""
    classes = np.unique(labels)
    if n > len(labels):
        raise BetaVAEError(
            f"--labels {n} is more than the {len(labels)} training images; use at most {len(labels)}"
        )
    if n < len(classes):
        raise BetaVAEError(
            f"--labels {n} is fewer than the {len(classes)} classes of the task; "
            f"use at least {len(classes)} so that every class is seen"
        )
    counts = np.full(len(classes), n // len(classes))
    counts[rng.choice(len(classes), n % len(classes), replace=False)] += 1
    members = [np.flatnonzero(labels == label) for label in classes]
    short = [str(label) for label, count, m in zip(classes, counts, members, strict=True) if count > len(m)]
    if short:
        raise BetaVAEError(
            f"--labels {n} asks for more images of class {', '.join(short)} than the training set "
            f"holds; use fewer labels"
        )
    return np.sort(
        np.concatenate(
            [rng.choice(m, count, replace=False) for m, count in zip(members, counts, strict=True)]
        )
    )


def encode_split(
    split: ImageSplit, represent: Representation, positions: np.ndarray, chunk: int = ENCODE_CHUNK
) -> np.ndarray:
    """Codes ``(len(positions), D)`` of the split's images at ``positions``, chunk by chunk."""
    parts = [
        np.asarray(
            represent(split.images(torch.from_numpy(positions[start : start + chunk])).cpu().numpy()),
            dtype=np.float64,
        )
        for start in range(0, len(positions), chunk)
    ]
    codes = np.concatenate(parts)
    if not np.isfinite(codes).all():
        raise BetaVAEError(
            "the representation gave NaN or infinite codes; a model whose training diverged cannot be scored"
        )
    return codes


def fit_and_score(
    train_codes: np.ndarray,
    train_labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    classes: np.ndarray,
) -> tuple[float, float]:
    """(test cross-entropy, test accuracy) of a softmax regression fitted on standardised codes.

    The features are standardised with the labelled sample's own mean and standard
    deviation (a constant feature, such as a border pixel, is left at scale 1), as a
    learner that sees only these ``n`` images would do.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    mean = train_codes.mean(axis=0)
    std = train_codes.std(axis=0)
    std[std < 1e-8] = 1.0
    # lbfgs fits the multinomial (softmax) model, one linear layer over all classes.
    model = LogisticRegression(solver="lbfgs", max_iter=2000)
    model.fit((train_codes - mean) / std, train_labels)
    probabilities = model.predict_proba((test_codes - mean) / std)
    loss = log_loss(test_labels, probabilities, labels=classes)
    accuracy = float(np.mean(model.classes_[probabilities.argmax(axis=1)] == test_labels))
    return float(loss), accuracy


def _series(
    runs: Sequence[RunDir], dataset: ImageDataset, baselines: Sequence[str], seed: int, device: torch.device
) -> list[_Series]:
    from sklearn.decomposition import PCA

    from betavae.metrics import baselines as baseline_codes

    series = []
    for run in runs:
        derived = run.read_derived()
        series.append(
            _Series(
                str(run.path.name),
                derived.beta,
                derived.beta_norm,
                run.read_config().latent_dim,
                model_representation(load_model(run, device)),
            )
        )
    latent_dims = sorted({s.latent_dim for s in series})
    for name in baselines:
        rng = named_generator(seed, f"transfer-baseline:{name}")  # not a repeat's stream of labelled draws
        if name == "pixels":
            series.append(
                _Series(
                    "baseline:pixels", None, None, math.prod(dataset.image_shape), baseline_codes.pixels()
                )
            )
        elif name == "pca":
            flatten = baseline_codes.pixels()
            fit = np.sort(
                rng.choice(len(dataset.train), min(PCA_FIT_IMAGES, len(dataset.train)), replace=False)
            )
            fit_pixels = encode_split(dataset.train, flatten, fit)
            for latent_dim in latent_dims:  # one PCA per latent size among the runs
                pca = PCA(n_components=latent_dim, random_state=seed).fit(fit_pixels)
                series.append(
                    _Series(
                        "baseline:pca",
                        None,
                        None,
                        latent_dim,
                        lambda images, pca=pca, flatten=flatten: pca.transform(flatten(images)),
                    )
                )
        elif name == "untrained":
            first = series[0]
            arch = runs[0].read_derived().arch
            series.append(
                _Series(
                    "baseline:untrained",
                    None,
                    None,
                    first.latent_dim,
                    baseline_codes.untrained(dataset, rng, first.latent_dim, arch, device),
                )
            )
        else:
            raise unknown_choice("transfer baseline", name, TRANSFER_BASELINES)
    return series


def run_transfer(
    run_dirs: Sequence[str | Path],
    labels: Sequence[int] = (10, 30, 100, 300, 1000, 3000, 10000),
    repeats: int = 5,
    task: str | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    baselines: Sequence[str] = TRANSFER_BASELINES,
    device: str = "cpu",
    max_test: int | None = None,
) -> TransferResult:
    """Fit a softmax regression on each run's frozen μ (and on the baselines) from few labels.

    ``run_dirs``: run folders trained on one dataset. ``labels``: the numbers ``n`` of
    labelled training images. ``repeats``: draws of the labelled images per ``n``, each
    from ``np.random.default_rng([seed, repeat])``. ``task``: ``digit`` (MNIST, the
    default there), ``factor:NAME`` (datasets with known factors) or ``attr:NAME`` (datasets
    with binary attributes: CelebA's). ``out``: where
    ``transfer.csv``, ``transfer.svg`` and ``transfer.txt`` go, by default the runs'
    common parent folder; an ``out`` that cannot be a folder is refused before any work,
    and a run folder's lock is held until the files are written. ``max_test``: score on a
    seeded subset of this many test images (default: the whole test set).
    """
    if not run_dirs:
        raise BetaVAEError("give at least one RUN_DIR to transfer from")
    if repeats < 1:
        raise BetaVAEError(f"--repeats must be at least 1, got {repeats}")
    check_seed(seed, "--seed")
    runs = [RunDir(path) for path in run_dirs]
    folder = (
        make_folder(out, "output folder") if out is not None else common_parent([run.path for run in runs])
    )
    for name in (CSV_FILE, PLOT_FILE, SUMMARY_FILE):  # before the work: never over a file of the user's
        _claim(folder / name)
    target = RunDir(folder)
    with target.lock_if_run_folder("betavae transfer"):
        return _transfer(runs, labels, repeats, task, folder, seed, baselines, device, max_test)


def _transfer(
    runs: Sequence[RunDir],
    labels: Sequence[int],
    repeats: int,
    task: str | None,
    folder: Path,
    seed: int,
    baselines: Sequence[str],
    device: str,
    max_test: int | None,
) -> TransferResult:
    dataset = shared_dataset(runs, "transfer")
    task, train_labels, test_labels = task_labels(dataset, task)
    classes = np.unique(train_labels)
    labels = sorted({int(n) for n in labels})
    if not labels:
        raise BetaVAEError("give at least one number of labels, e.g. --labels 10,100,1000")

    # The labelled samples depend only on (seed, repeat): every representation sees the same images,
    # and each training image is encoded once however many samples hold it.
    samples = {}
    for repeat in range(repeats):
        rng = np.random.default_rng([seed, repeat])
        for n in labels:
            samples[n, repeat] = balanced_sample(train_labels, n, rng)
    needed = np.unique(np.concatenate(list(samples.values())))
    test_positions = np.arange(len(dataset.test))
    if max_test is not None and max_test < len(test_positions):
        test_positions = np.sort(
            np.random.default_rng(seed).choice(len(test_positions), max_test, replace=False)
        )

    rows: list[dict[str, Any]] = []
    for series in _series(runs, dataset, baselines, seed, resolve_device(device)):
        train_codes = encode_split(dataset.train, series.represent, needed)
        test_codes = encode_split(dataset.test, series.represent, test_positions)
        for n, repeat in ((n, repeat) for n in labels for repeat in range(repeats)):
            positions = samples[n, repeat]
            loss, accuracy = fit_and_score(
                train_codes[np.searchsorted(needed, positions)],
                train_labels[positions],
                test_codes,
                test_labels[test_positions],
                classes,
            )
            rows.append(
                {
                    "run": series.run,
                    "beta": series.beta,
                    "beta_norm": series.beta_norm,
                    "latent_dim": series.latent_dim,
                    "n": n,
                    "repeat": repeat,
                    "loss": loss,
                    "accuracy": accuracy,
                }
            )

    csv_path = write_file(folder / CSV_FILE, to_csv(rows), KIND, ours=_in_betavae_folder)
    title = transfer_title(dataset.name, task, repeats)
    curves = transfer_curves(rows)
    plot_path = transfer_figure(curves, _claim(folder / PLOT_FILE), title)
    record_file(plot_path, KIND)
    summary = summarise(curves, title)
    summary_path = write_file(folder / SUMMARY_FILE, summary, KIND, ours=_in_betavae_folder)
    return TransferResult(rows, csv_path, plot_path, summary_path, summary)


def _claim(path: Path) -> Path:
    """``path`` if transfer may write it: new, written by transfer before, or in a folder of betavae's
    (a run's, a sweep's), where its name is transfer's alone."""
    return claim_file(path, KIND, ours=_in_betavae_folder)


def _in_betavae_folder(path: Path) -> bool:
    return made_by_betavae(path.parent)


def transfer_title(dataset: str, task: str, repeats: int) -> str:
    """``mnist, task digit, 3 repeats``: how the figure and the summary name an experiment."""
    return f"{dataset}, task {task}, {repeats} repeat{'s' if repeats > 1 else ''}"


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else row[key] for key in COLUMNS})
    return buffer.getvalue()


def series_label(run: str, beta: float | None, beta_norm: float | None, latent_dim: int) -> str:
    """How a run or baseline is named in the plot and the summary: β, β_norm and M (the latent size)."""
    if run.startswith("baseline:"):
        name = run.removeprefix("baseline:")
        return name if name == "pixels" else f"{name}, M={latent_dim}"
    parts = [f"β={beta:g}" if beta is not None else run]
    if beta_norm is not None:
        parts.append(f"β_norm={beta_norm:.3g}")
    return ", ".join(parts + [f"M={latent_dim}"])


def transfer_curves(rows: Sequence[dict[str, Any]]) -> list[TransferCurve]:
    """Per representation (run and latent size), in the order of ``rows``: mean and std over repeats per n."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["run"], row["latent_dim"]), []).append(row)
    curves = []
    for (run, latent_dim), members in groups.items():
        by_n: dict[int, list[dict[str, Any]]] = {}
        for row in members:
            by_n.setdefault(row["n"], []).append(row)
        scores = {
            n: Score(
                loss=float(np.mean([r["loss"] for r in repeats])),
                loss_std=float(np.std([r["loss"] for r in repeats])),
                accuracy=float(np.mean([r["accuracy"] for r in repeats])),
                accuracy_std=float(np.std([r["accuracy"] for r in repeats])),
            )
            for n, repeats in sorted(by_n.items())
        }
        beta, beta_norm = members[0]["beta"], members[0]["beta_norm"]
        curves.append(
            TransferCurve(
                run, beta, beta_norm, latent_dim, series_label(run, beta, beta_norm, latent_dim), scores
            )
        )
    # Runs alike but for their seed would share a label: the run's folder name tells them apart.
    shared = {label for label, count in Counter(curve.label for curve in curves).items() if count > 1}
    return [dataclasses.replace(curve, label=f"{curve.label} ({curve.run})") if curve.label in shared
            else curve for curve in curves]


def reference_run(runs: Sequence[TransferCurve]) -> TransferCurve:
    """The run of ``runs`` (one latent size) whose β is closest to 1 on a log scale: :data:`REFERENCE_RULE`.

    A log scale because β is swept by factors (0.1, 1, 10): β = 0.5 and β = 2 are equally
    far from the plain VAE (β = 1). A β of 0, or none, is infinitely far.
    """

    def distance(curve: TransferCurve) -> tuple[float, float]:
        if curve.beta is None:
            return math.inf, math.inf
        return (abs(math.log(curve.beta)) if curve.beta > 0 else math.inf), curve.beta

    return min(runs, key=distance)


def summarise(curves: Sequence[TransferCurve], title: str) -> str:
    """Per latent size: every run's test loss and accuracy at each n, and whether the best β beats
    the reference.

    The reference is chosen by :data:`REFERENCE_RULE`, which the text states. A difference
    counts as larger than the spread when |Δ mean| exceeds the two standard deviations
    over repeats added in quadrature.
    """
    lines = [
        f"transfer on {title}: test cross-entropy (nats, lower is better) and accuracy, "
        f"mean ± std over repeats",
        f"reference: {REFERENCE_RULE}",
    ]
    runs = [curve for curve in curves if not curve.is_baseline]
    baselines = [curve for curve in curves if curve.is_baseline]
    for latent_dim in sorted({curve.latent_dim for curve in runs}):
        same_size = sorted(
            (curve for curve in runs if curve.latent_dim == latent_dim),
            key=lambda curve: (curve.beta is None, curve.beta or 0.0, curve.run),
        )
        reference = reference_run(same_size)
        lines.append(f"M = {latent_dim} (reference: {reference.label}):")
        lines += _score_table(same_size, reference)
        for n in sorted(reference.scores):
            best = min(same_size, key=lambda curve: curve.scores[n].loss)
            b, r = best.scores[n], reference.scores[n]
            line = f"  n={n}: best {best.label}, loss {b.loss:.3f} ± {b.loss_std:.3f}, acc {b.accuracy:.3f}"
            if best is reference:
                line += " (the reference)"
            else:
                delta, spread = b.loss - r.loss, math.hypot(b.loss_std, r.loss_std)
                verdict = "larger than" if abs(delta) > spread else "within"
                line += f"; vs reference Δ = {delta:+.3f}, {verdict} the spread ({spread:.3f})"
            lines.append(line)
    if baselines:
        lines.append("baselines:")
        for n in sorted({n for curve in baselines for n in curve.scores}):
            lines.append(
                f"  n={n}: "
                + "; ".join(
                    f"{curve.label} loss {curve.scores[n].loss:.3f}, acc {curve.scores[n].accuracy:.3f}"
                    for curve in baselines
                    if n in curve.scores
                )
            )
    return "\n".join(lines) + "\n"


def _score_table(runs: Sequence[TransferCurve], reference: TransferCurve) -> list[str]:
    """One row per n and run: ``n``, the run's label, loss ± std, accuracy ± std; the reference marked."""
    header = ("n", "run", "loss", "accuracy")
    rows = []
    for n in sorted({n for curve in runs for n in curve.scores}):
        for curve in runs:
            if n in curve.scores:
                score = curve.scores[n]
                rows.append(
                    (
                        str(n),
                        curve.label,
                        f"{score.loss:.3f} ± {score.loss_std:.3f}",
                        f"{score.accuracy:.3f} ± {score.accuracy_std:.3f}"
                        + ("  reference" if curve is reference else ""),
                    )
                )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    return [
        f"  {row[0]:>{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip()
        for row in [header, *rows]
    ]
