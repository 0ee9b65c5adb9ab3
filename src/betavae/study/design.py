"""The reproduction study's design: its parts, its scales, and the constants its claims rest on.

One module that the runner (:mod:`betavae.study.runner`, which trains and measures) and the
report (:mod:`betavae.study.study_report`, which judges) both import, so neither imports the
other. Nothing here runs anything: it is data.

Sources: the β-VAE paper (Higgins et al., ICLR 2017) and the reproducibility report on it,
whose findings claim by claim and whose setup are in ``shared/reference/report-findings.md``;
the columns of the claims table below quote that file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

MEASUREMENTS_FILE = "measurements.json"
# The interactive poster of a finished study (betavae.poster): DIR/poster/index.html, linked from the report.
POSTER_DIR = "poster"
PAPER_BETA = 4.0  # the β of the paper's 2D-shapes model (Higgins et al. 2017, Fig. 6)
SCORE_METRIC = "beta_vae"  # claims 4 and 5 as the report judged them: on the paper's own score
BASELINES = ("pixels", "pca", "ica", "untrained")
PAPER_DATASET = "dsprites"  # the paper's numbers below are on its 2D shapes: shown beside this set only
# The paper's disentanglement scores (its Fig. 6, 2D shapes), for the baselines table.
PAPER_SCORES = {"pixels": "45.75 ± 0.8 %", "pca": "84.9 ± 0.4 %", "ica": "42.03 ± 10.6 %",
                "untrained": "44.14 ± 2.5 %", "vae": "61.58 ± 0.5 %", "beta_vae": "99.23 ± 0.1 %"}
# The paper's own network for its table (Higgins et al. 2017: fully connected, models.fc), trained at β = 1
# and β = 4 on the paper's set beside the study's convolutional comparison (PAPER_NET_SWEEP), its untrained
# weights a baseline of their own, and every one of them scored by the score as the paper ran it
# (PAPER_METRIC) beside the reference's: docs/notes/paper-baselines-protocol.md.
PAPER_NET = "fc"
PAPER_NET_SWEEP = "compare-fc"
PAPER_NET_BASELINE = "untrained_fc"
PAPER_METRIC = "beta_vae_paper"
# The rows of the baselines table that the paper's network gives, and the paper's numbers beside them.
PAPER_NET_ROWS = {"untrained_fc": "untrained", "vae_fc": "vae", "beta_vae_fc": "beta_vae"}
# The β-VAE's successors (docs/guide/objectives.md) beside it in the baselines table: the training
# keys of each objective's sweep, the settings of the toolkit's dSprites comparison (same page).
SUCCESSORS = {
    "beta_tc": {"beta": 6.0},  # Chen et al. 2018: total-correlation weight 6
    "factor": {"factor_gamma": 35.0},  # Kim & Mnih 2018: the toolkit's default γ
    "capacity": {"capacity_gamma": 1000.0, "capacity_max": 25.0},  # Burgess et al.'s dSprites γ and C_max
    "dip": {"dip_type": "ii", "dip_lambda_od": 10.0, "beta": 1.0},  # Kumar et al. 2018: DIP-VAE II, KL × 1
}
SUCCESSORS_FOLDER = "successors"  # PART/successors/OBJECTIVE: one sweep over seeds per objective
# The β-VAE score's classifier made weaker, as the reproducibility report suggested (the metric
# beta_vae_weak, measured on the grids beside the others): each one's name in the report, and its
# name in the metric (metrics.beta_vae.WEAKER_CLASSIFIERS).
WEAK_CLASSIFIERS = {"strong L2 (C = 0.001)": "strong_l2", "few iterations (5)": "few_iterations"}
WEAK_METRIC = "beta_vae_weak"

# Margins of the claims stated as "about equal" or "no gain" (two one-sided tests against them).
EQUIVALENCE_MARGIN = 0.05  # ICA ≈ pixels on the paper's score: within 5 points of accuracy
NO_GAIN_MARGIN = 0.02  # transfer: "does not improve" means by less than 2 points of accuracy
SATURATION = 0.95  # "near 100 %": the paper's score at or above 95 %

# --- when a run counts as trained ----------------------------------------------------------------
# Held-out reconstruction (per image, summed over pixels) of a β = 1, latent size 10 run of seed 0 at
# batch 64, trained 2,000 steps (1,500 for the Bernoulli heart set), by dataset, architecture and
# reconstruction loss: what a trained model reaches (docs/guide/reproduce.md gives the commands). A run is
# trained when its own held-out reconstruction is within TRAINED_FACTOR of this, or when its training
# loss has flattened and the least-regularised run of its sweep with the same seed and latent size is
# within the factor (a large β legitimately reconstructs worse: it is trained if it stopped improving
# while its sibling learned).
REFERENCE_RECON = {
    ("shapes_heart", "conv28", "gaussian"): 5.89,
    ("shapes_heart", "conv28", "bernoulli"): 27.63,
    ("mnist", "conv28", "gaussian"): 19.56,
    # Not measured at β = 1 yet: an upper bound, the whole held-out loss (reconstruction + 4·KL) of
    # conv64 at β = 4 after 24,000 steps at lr 1e-4 (docs/notes/time-to-disentangle.md). Loose, but it puts
    # the mean image's plateau (~600) far outside 1.5× it, which is what the mark must catch.
    ("dsprites", "conv64", "bernoulli"): 107.6,
}
TRAINED_FACTOR = 1.5
FLAT_TOLERANCE = 0.1  # flattened: its last quarter brought at most a tenth of the run's improvement


@dataclass(frozen=True)
class Part:
    """One dataset of the study: its name in the registry, its architecture, its losses and measures.

    ``recon`` is the grid's reconstruction loss and ``compare_recon`` that of the β = 1 / β = 4
    comparison: the report trained with squared error (``gaussian``) over a β_norm grid, the paper
    with a Bernoulli likelihood at β = 4, and a raw β means a different pressure under each loss, so
    the comparison of the paper's β runs under the paper's loss where the two differ.
    """

    folder: str
    dataset: str
    arch: str
    factors: bool  # disentanglement metrics (else held-out loss only)
    transfer_task: str | None = None
    recon: str = "bernoulli"
    compare_recon: str = "bernoulli"


PARTS = {
    "shapes": Part("shapes", "shapes_heart", "conv28", True, recon="gaussian", compare_recon="bernoulli"),
    "mnist": Part("mnist", "mnist", "conv28", False, "digit", recon="gaussian", compare_recon="gaussian"),
    "dsprites": Part("dsprites", "dsprites", "conv64", True, "factor:shape"),
}


@dataclass(frozen=True)
class Scale:
    """How big the study is: its parts, grid, training, seeds and the sizes of every measurement."""

    name: str
    why: str
    parts: tuple[str, ...]  # folders of PARTS
    beta_norms: tuple[float, ...]
    latent_dims: tuple[int, ...]
    seeds: int  # of the β = 1 / β = 4 comparison (claims 3, 7 and 8)
    steps: dict[str, int]  # per part folder
    batch_size: int
    compare_latent: int
    metrics: tuple[str, ...]
    n_train: int
    n_eval: int
    test_size: dict[str, int] = field(default_factory=dict)
    metric_batch_size: int | None = None  # the β-VAE scores' L pairs a point (None: the metrics' own, 64)
    baseline_seeds: int = 3
    baseline_fit: int = 10_000  # images PCA and ICA are fitted on
    transfer_labels: tuple[int, ...] = (10, 100, 1000)
    transfer_repeats: int = 3
    transfer_test: int | None = 2000
    blur_images: int = 256
    grid_seeds: int | None = None  # of the β_norm × latent grid (claims 1, 2, 4, 5, 6); None: ``seeds``
    factor_grid_seeds: int | None = None  # of the grid on sets with factors (claim 6); None: ``grid_seeds``
    deterministic: bool = False  # on a GPU, kernels that repeat their numbers (train --deterministic)
    successors: tuple[str, ...] = ()  # objectives of SUCCESSORS trained beside the β-VAE …
    successor_parts: tuple[str, ...] = ()  # … on these part folders (sets with known factors) …
    successor_seeds: int | None = None  # … over this many seeds; None: ``seeds``
    figure_betas: tuple[float, ...] = ()  # raw β × figure_latents: the report's Figs. 3, 5, 6 and 7 …
    figure_latents: tuple[int, ...] = ()
    figure_parts: tuple[str, ...] = ()  # … on these parts, with the grid's loss and ``seeds`` seeds
    # Parts whose grid (trained with squared error) is trained again with its logarithm (LMSE_SWEEP): the
    # comparison the report suggested and could not make (a finding of ours, not a claim of either paper).
    lmse_parts: tuple[str, ...] = ()
    # Whether the paper's set is also trained with the paper's own network at β = 1 and β = 4
    # (PAPER_NET_SWEEP) and its baselines scored by the paper's protocol too (PAPER_METRIC).
    paper_net: bool = False
    brief: str = ""  # what it is for and what it costs, in a few words, for the CLI's help

    @property
    def metric_sizes(self) -> dict[str, int]:
        """The sizes every metric of this scale runs with (:data:`betavae.metrics.SIZE_NAMES`)."""
        from betavae.metrics.settings import metric_sizes

        return metric_sizes(self.n_train, self.n_eval, self.metric_batch_size)

    @property
    def seeds_of_grid(self) -> int:
        return self.seeds if self.grid_seeds is None else self.grid_seeds

    def grid_seeds_of(self, part: Part) -> int:
        """The grid's seeds on ``part``: a set with factors may have more, for claim 6's share of
        saturated runs, which an exact (sign-flip) test decides only from 5 seeds."""
        if part.factors and self.factor_grid_seeds is not None:
            return self.factor_grid_seeds
        return self.seeds_of_grid

    @property
    def seeds_of_successors(self) -> int:
        return self.seeds if self.successor_seeds is None else self.successor_seeds

    def parts_of(self) -> list[Part]:
        return [PARTS[folder] for folder in self.parts]

    def successors_of(self, part: Part) -> tuple[str, ...]:
        """The successors trained on ``part``: none on a set without factors to score them by."""
        return self.successors if part.factors and part.folder in self.successor_parts else ()

    def sweeps_of(self, part: Part) -> list[str]:
        """The sweeps of ``part``, as folders under it: the grid, the comparison, the report's figure
        settings where this scale has them, each successor's, the grid under log-MSE, the paper's network."""
        figures = [FIGURES_SWEEP] if self.figure_betas and part.folder in self.figure_parts else []
        successors = [f"{SUCCESSORS_FOLDER}/{objective}" for objective in self.successors_of(part)]
        lmse = [LMSE_SWEEP] if self.lmse_of(part) else []
        paper_net = [PAPER_NET_SWEEP] if self.paper_net_of(part) else []
        return ["grid", "compare", *figures, *successors, *lmse, *paper_net]

    def paper_net_of(self, part: Part) -> bool:
        """Whether ``part`` is the paper's set trained with the paper's own network at this scale."""
        return self.paper_net and part.dataset == PAPER_DATASET

    def metrics_of(self, part: Part) -> tuple[str, ...]:
        """The metrics the baselines and the paper's network are scored by on ``part``: the scale's, and
        the score as the paper ran it where the part reproduces the paper's table."""
        return (*self.metrics, PAPER_METRIC) if self.paper_net_of(part) else self.metrics

    def lmse_of(self, part: Part) -> bool:
        """Whether ``part``'s grid is trained again under log-MSE: where this scale says so and the grid's
        own loss is squared error (what log-MSE replaces)."""
        return part.folder in self.lmse_parts and part.recon in SQUARED_ERROR


FIGURES_SWEEP = "figures"  # PART/figures: the report's raw-β settings (β = 0 … 16 at latent sizes 2 …)
# PART/grid-lmse: the grid's settings and seeds trained with the log of the squared error (``--recon lmse``):
# the Gaussian's variance fitted instead of fixed, which the reproducibility report named as possibly the
# right loss and left untested (shared/reference/report-findings.md).
LMSE_SWEEP = "grid-lmse"
SQUARED_ERROR = ("gaussian", "mse")  # the names of the report's loss
# The five metrics, DCI with its fast predictor (what `--metrics all` computes).
STUDY_METRICS = ("beta_vae", "factor_vae", "mig", "dci", "sap")
# At paper scale, DCI with the reference's gradient-boosted trees, so its numbers compare with published ones.
REFERENCE_METRICS = ("beta_vae", "factor_vae", "mig", "dci_gbt", "sap")
# The paper's resolution over the range the report wished for: 3 values a decade from 2e-5 to 20.
FINE_BETA_NORMS = tuple(float(f"{2e-5 * 10 ** (k / 3):.3g}") for k in range(19))
SCALES = {
    "smoke": Scale(
        "smoke", "a minute's check that everything runs: every part and sweep, on runs too short and "
        "seeds too few to decide anything", parts=("shapes", "dsprites", "mnist"),
        brief="a minute, decides nothing",
        beta_norms=(0.01, 1.0), latent_dims=(4, 8), seeds=1, steps={"shapes": 30, "dsprites": 6, "mnist": 30},
        batch_size=32, compare_latent=4, metrics=("beta_vae", "mig"), n_train=40, n_eval=20,
        test_size={"shapes": 500, "dsprites": 500}, baseline_seeds=2, baseline_fit=500,
        transfer_labels=(10, 50), transfer_repeats=2, transfer_test=300, blur_images=32,
        successors=("beta_tc", "factor"), successor_parts=("shapes",), successor_seeds=1,
        figure_betas=(0.0, 1.0), figure_latents=(2,), figure_parts=("shapes",),
        lmse_parts=("shapes", "mnist"), paper_net=True),
    "small": Scale(
        "small", "the report's own scope, sized for two CPU cores in under half an hour (make run; "
        "docs/guide/reproduce.md): its heart set and MNIST at 28 × 28 with its squared-error loss, trained "
        "to within 1.5× of a trained model's reconstruction (the heart set 600 steps, MNIST 800), 3 β_norm "
        "(the report's lower three: a peak inside needs three) × latent sizes 5 and 50 (ten times apart, "
        "as the β_norm are, so that pairs of runs share a raw β and the latent size is compared at fixed "
        "β) over 3 seeds (5 on the heart set, whose share of saturated runs an exact test judges), and "
        "β = 1 against β = 4 over 3 seeds; every metric on 300 + 150 points. dSprites needs the medium "
        "scale",
        brief="the report's sets on two CPU cores, under half an hour",
        parts=("shapes", "mnist"), beta_norms=(0.002, 0.02, 0.2), latent_dims=(5, 50), seeds=3, grid_seeds=3,
        factor_grid_seeds=5,
        steps={"shapes": 600, "mnist": 800}, batch_size=64, compare_latent=10,
        metrics=STUDY_METRICS, n_train=300, n_eval=150, test_size={"shapes": 2000},
        baseline_fit=2000, transfer_labels=(10, 100, 1000), transfer_test=2000, blur_images=256,
        successor_parts=("shapes",), successor_seeds=3),
    "medium": Scale(
        "medium", "small's design over 5 seeds (enough for the exact tests of coarse effects to find a "
        "claim held), longer runs, and the paper's dSprites at a length where conv64 learns it (8,000 "
        "steps), with the report's MNIST figure settings (raw β 0 … 16 at latent sizes 2 and 10): a night "
        "on two CPU cores (dSprites is most of it), under an hour on one GPU",
        brief="adds dSprites and 5 seeds: a night on two cores, an hour on a GPU",
        parts=("shapes", "mnist", "dsprites"), beta_norms=(0.002, 0.02, 0.2), latent_dims=(5, 50),
        seeds=5, grid_seeds=5, steps={"shapes": 1500, "mnist": 2000, "dsprites": 8000}, batch_size=64,
        compare_latent=10, metrics=STUDY_METRICS, n_train=1000, n_eval=500,
        test_size={"shapes": 2000, "dsprites": 5000}, baseline_seeds=5, baseline_fit=5000,
        transfer_labels=(10, 100, 1000), transfer_repeats=3, transfer_test=5000, blur_images=512,
        successor_parts=("shapes", "dsprites"), successor_seeds=5,
        figure_betas=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0), figure_latents=(2, 10), figure_parts=("mnist",),
        lmse_parts=("shapes", "mnist"), paper_net=True),
    "paper": Scale(
        "paper", "the report's latent sizes over the range 2e-5 … 20 it wished for at the paper's "
        "resolution (3 β_norm a decade), the report's figure settings (raw β 0 … 16 at latent sizes 2, "
        "5 and 10), the paper's training lengths, 5 seeds, DCI with the reference's boosted trees, "
        "deterministic GPU kernels (the same seed gives the same numbers): for a GPU cluster",
        brief="a GPU cluster",
        parts=("shapes", "mnist", "dsprites"), beta_norms=FINE_BETA_NORMS, latent_dims=(5, 10, 25, 50, 125),
        seeds=5, steps={"shapes": 100_000, "dsprites": 300_000, "mnist": 100_000}, batch_size=64,
        compare_latent=10, metrics=REFERENCE_METRICS, n_train=10_000, n_eval=5_000, baseline_seeds=5,
        deterministic=True, transfer_labels=(10, 30, 100, 300, 1000, 3000, 10000), transfer_repeats=5,
        transfer_test=None, blur_images=1000, successors=tuple(SUCCESSORS),
        successor_parts=("shapes", "dsprites"),
        figure_betas=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0), figure_latents=(2, 5, 10),
        figure_parts=("shapes", "mnist"), lmse_parts=("shapes", "mnist"), paper_net=True),
}

# The test suite's: smoke's design (every part, sweep, successor, figure and measurement, so the report
# has every section, table and figure) on the fewest steps and points that still make each of them.
SCALES["test"] = replace(
    SCALES["smoke"], name="test", why="the test suite's: the smoke study's shape on fewer steps and points",
    brief="the test suite's: smoke's shape, fewer steps",
    steps={"shapes": 12, "dsprites": 3, "mnist": 12}, n_train=20, n_eval=10, metric_batch_size=4,
    test_size={"shapes": 200, "dsprites": 200, "mnist": 200},
    baseline_fit=300, transfer_labels=(10, 20), transfer_test=200, blur_images=16)


def scale_of(name: str) -> Scale:
    """The scale called ``name``; another name is a one-line error listing them."""
    from betavae.errors import unknown_choice

    if name not in SCALES:
        raise unknown_choice("scale", name, SCALES)
    return SCALES[name]


def checked_successors(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``names`` as a tuple in :data:`SUCCESSORS`' order, each once; an unknown one is a one-line error."""
    from betavae.errors import unknown_choice

    for name in names:
        if name not in SUCCESSORS:
            raise unknown_choice("successor", name, SUCCESSORS)
    return tuple(name for name in SUCCESSORS if name in names)


# --- what the paper and the report said, claim by claim -------------------------------------------
# The "Paper" and "Reproducibility report" columns of the claims table; the report's column quotes
# shared/reference/report-findings.md (figure numbers are each document's own).
PAPER_SAYS = {
    1: "stated: β trades reconstruction for disentanglement (its text; no held-out loss figure)",
    2: "shown: reconstructions blur as β grows (its text and traversals)",
    3: "β = 4: 99.23 ± 0.1 % against β = 1: 61.58 ± 0.5 % on its score (Fig. 6, 2D shapes)",
    4: "shown: the score falls past its best β_norm (Fig. 6, right)",
    5: "shown: the best β_norm grows with the latent size (Fig. 6, right)",
    6: "—",
    7: "β-VAE codes help learn new tasks from few labels (its motivation; not measured there)",
    8: "ICA 42.0 ≈ pixels 45.75 < VAE 61.58 < PCA 84.9 < β-VAE 99.23 % (Fig. 6, 2D shapes)",
}
REPORT_SAYS = {
    1: "held on MNIST, consistently over the whole grid (its Fig. 2; β = 1 line across latent sizes)",
    2: "held by eye: MNIST at latent sizes 2 and 10, β 0 to 16; quality drops markedly already at β = 2 "
       "(its Fig. 3)",
    3: "not shown: the score is near-perfect for almost all models (its Fig. 4); heart traversals at "
       "latent size 5, β = 0, 1, 2 show no gain from β (its Fig. 6); no disentangled MNIST unit (its Fig. 5)",
    4: "held: excessively high β lowers the score at every latent size (its Fig. 4)",
    5: "held (its Fig. 4)",
    6: "found: almost every model scores near 100 %; those that do not have a poor held-out loss",
    "6b": "hypothesised, not tested (the report doubts it would help)",
    7: "not verified on MNIST (its Fig. 7, latent 2 and 10): β ∈ {8, 16} less sample-efficient than "
       "β = 1; β ≈ 1 best",
    8: "not examined",
}


@dataclass
class Measured:
    """Everything the claims and the report read, per part folder (rows of sweeps, kept measurements)."""

    grid: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    compare: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    figure_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # the report's raw-β settings
    blur: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lmse: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # the grid under log-MSE (LMSE_SWEEP)
    lmse_blur: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    paper_net: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # PAPER_NET_SWEEP's rows
    weak: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    baselines: dict[str, dict[str, list[dict[str, float | None]]]] = field(default_factory=dict)
    transfer: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    successors: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)  # part → objective
    figures: dict[str, list[Path]] = field(default_factory=dict)
    factor_counts: dict[str, int] = field(default_factory=dict)  # part → factors that vary (chance levels)
