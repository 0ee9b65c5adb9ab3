"""The reproduction study's report: each claim judged, the baselines table, every figure.

:mod:`betavae.studies.reproduce` measures; this module turns the measurements into
:class:`~betavae.studies.report.ClaimRow` verdicts (by :mod:`betavae.studies.claims`'s rule)
and the sections of the report, which :func:`betavae.studies.report.write_report` renders.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from betavae.studies import claims
from betavae.studies.claims import HELD, INCONCLUSIVE, NOT_HELD, Judgement
from betavae.studies.report import ClaimRow, Figure, Report, Section, Table, write_report
from betavae.studies.reproduce import (
    BASELINES,
    PAPER_BETA,
    PAPER_SCORES,
    PRIMARY_METRIC,
    SUCCESSORS,
    WEAK_CLASSIFIERS,
    Measured,
    Part,
    Scale,
    environment,
)
from betavae.studies.results import headline_column as headline  # a metric's main column: mig.mig

LOSS = "test.loss"
NO_GAIN_MARGIN = 0.02  # accuracy: "does not improve" means by less than two points
LABELS = {"pixels": "Raw pixels", "pca": "PCA", "ica": "ICA", "untrained": "VAE untrained",
          "vae": "VAE (β = 1)", "beta_vae": f"β-VAE (β = {PAPER_BETA:g})",
          "beta_tc": f"β-TCVAE (β = {SUCCESSORS['beta_tc']['beta']:g})",
          "factor": f"FactorVAE (γ = {SUCCESSORS['factor']['factor_gamma']:g})",
          "capacity": f"capacity annealing (γ = {SUCCESSORS['capacity']['capacity_gamma']:g}, "
                      f"C to {SUCCESSORS['capacity']['capacity_max']:g} nats)",
          "dip": f"DIP-VAE II (λ_od = {SUCCESSORS['dip']['dip_lambda_od']:g})"}


def write_study_report(out: Path, scale: Scale, parts: Sequence[Part], measured: Measured,
                       timings: dict[str, float], skipped: list[str], command: str) -> Path:
    """Judge the claims, lay out the sections and write ``report.html`` and ``report.md`` into ``out``."""
    factor_parts = [part for part in parts if part.factors]
    rows = [
        _claim(1, "Larger β, or a smaller latent space, gives a higher held-out loss.",
               "shown for β (Fig. 7: reconstructions degrade as β grows)", "—",
               _loss_claim(parts, measured)),
        _claim(2, "Reconstructions get blurrier as β grows (high-frequency share of held-out "
                  "reconstructions against log β_norm).", "shown (reconstructions across β)", "—",
               claims.judged([(part.folder, claims.slope_per_seed(measured.blur[part.folder], "beta_norm",
                                                                   "ratio", "latent_dim"), "negative")
                              for part in parts])),
        _claim(3, f"β-VAE (β = {PAPER_BETA:g}) is more disentangled than the VAE (β = 1), on each metric.",
               "99.23 % against 61.58 % on its score", "—", _beta_vs_vae(factor_parts, measured, scale)),
        _claim(4, f"Too large a β lowers disentanglement again ({PRIMARY_METRIC}).",
               "shown (disentanglement falls past its best β)", "—",
               claims.judged([(part.folder, claims.drop_after_peak(measured.grid[part.folder],
                                                                    headline(PRIMARY_METRIC)), "positive")
                              for part in factor_parts])),
        _claim(5, f"Larger latent spaces keep high disentanglement up to larger β_norm ({PRIMARY_METRIC}'s "
                  "best β_norm against latent size).", "shown (Fig. 6)", "—",
               claims.judged([(part.folder, claims.peak_shift(measured.grid[part.folder],
                                                               headline(PRIMARY_METRIC)), "positive")
                              for part in factor_parts])),
        *_saturation_claims(factor_parts, measured, scale),
        *_transfer_claims(parts, measured),
        _claim(8, "The baselines keep the paper's order on its score: ICA ≈ pixels < VAE < PCA < β-VAE.",
               "42.0 ≈ 45.8 < 61.6 < 84.9 < 99.2 %", "—", _baseline_order(factor_parts, measured)),
    ]
    sections = [_metrics_section(scale), _baselines_section(factor_parts, measured, scale)]
    for part in parts:
        sections.append(Section(f"{part.dataset}: grid and figures", [_part_text(part, scale)], [],
                                [Figure(path, _caption(path, part, scale))
                                 for path in measured.figures.get(part.folder, [])]))
    report = Report(
        title="β-VAE, reproduced", command=command, scale=f"{scale.name}: {scale.why}", rule=claims.RULE,
        claims=rows, sections=sections, environment=environment(), timings=timings, skipped=skipped)
    html_path, _ = write_report(report, out)
    return html_path


def _claim(number: int, claim: str, paper: str, report: str, judgement: Judgement) -> ClaimRow:
    return ClaimRow(number, claim, paper, report, judgement.ours, judgement.verdict, judgement.why,
                    judgement.parts)


def _loss_claim(parts: Sequence[Part], measured: Measured) -> Judgement:
    pieces = []
    for part in parts:
        grid = measured.grid[part.folder]
        pieces.append((f"{part.folder} loss/log β_norm", claims.slope_per_seed(grid, "beta_norm", LOSS,
                                                                               "latent_dim"), "positive"))
        pieces.append((f"{part.folder} loss/log M",
                       claims.slope_per_seed(grid, "latent_dim", LOSS, "beta_norm"), "negative"))
    return claims.judged(pieces)


def _beta_vs_vae(parts: Sequence[Part], measured: Measured, scale: Scale) -> Judgement:
    return claims.judged([
        (f"{part.folder} {metric}", claims.paired_differences(measured.compare[part.folder], headline(metric),
                                                              "beta", PAPER_BETA, 1.0), "positive")
        for part in parts for metric in scale.metrics])


def _saturation_claims(parts: Sequence[Part], measured: Measured, scale: Scale) -> list[ClaimRow]:
    if "beta_vae" not in scale.metrics:
        return []
    score = headline("beta_vae")
    saturation = []
    for part in parts:
        grid = measured.grid[part.folder]
        chance = 1 / _factor_count(part)
        saturation.append((f"{part.folder} share of runs scoring ≥ 95 %, minus ½",
                           claims.share_at_least(grid, score, 0.95), "positive"))
        for metric in scale.metrics:
            if metric != "beta_vae":
                saturation.append((f"{part.folder} spread of {metric} minus the score's",
                                   claims.spread_gain(grid, headline(metric), score,
                                                      lambda column, chance=chance: (1 - chance)
                                                      if column == score else 1.0), "positive"))
    weaker = []
    for part in parts:
        chance = 1 / _factor_count(part)
        rows = measured.weak[part.folder]  # each with the score's own classifier on the same points
        for name in WEAK_CLASSIFIERS:
            above_chance = 1 - chance
            gains = claims.spread_gain(rows, name, "default", lambda column, r=above_chance: r)
            weaker.append((f"{part.folder} {name}", gains, "positive"))
    return [
        _claim(6, "The paper's score saturates near 100 % for most models while the later metrics separate "
                  "them (spread across the grid, each metric over its range above chance).",
               "—", "saturates near 100 % for most models", claims.judged(saturation)),
        _claim(6, "The report's hypothesis: a less expressive classifier (strong L2, or fewer iterations) "
                  "makes the score informative again (it spreads the grid's runs more).",
               "—", "hypothesised, not tested", claims.judged(weaker)),
    ]


def _factor_count(part: Part) -> int:
    from betavae.data import load

    return len(load(part.dataset, **({"in_memory": False} if part.dataset != "mnist" else {})).factor_names)


def _transfer_claims(parts: Sequence[Part], measured: Measured) -> list[ClaimRow]:
    rows = []
    for part in parts:
        if part.folder not in measured.transfer:
            continue
        gains = _transfer_gains(measured.transfer[part.folder])
        if part.folder == "mnist":
            verdict, effect = claims.no_gain(gains, NO_GAIN_MARGIN)
            rows.append(ClaimRow(7, f"A β-VAE encoder (β = {PAPER_BETA:g}) does not improve few-label "
                                    "MNIST classification over β = 1 (accuracy gain, averaged over the "
                                    "label counts).",
                                 "—", "no improvement", effect.text(3, "draw"), verdict,
                                 f"held if the gain + 2 SE < {NO_GAIN_MARGIN}, not held if gain − 2 SE > 0"))
        else:
            verdict, effect = claims.judge(gains, "positive")
            task = part.transfer_task.removeprefix("factor:")
            rows.append(ClaimRow(7, f"A β-VAE encoder helps predict the {task} of {part.dataset} images "
                                    "from few labels (accuracy gain over β = 1).", "—", "—",
                                 effect.text(3, "draw"),
                                 verdict, "the gain against twice its standard error over paired draws"))
    return rows


def _transfer_gains(rows: Sequence[dict[str, Any]]) -> list[float]:
    """Per (seed, repeat): the β-VAE's accuracy minus β = 1's, averaged over the label counts."""
    accuracy: dict[tuple[Any, Any, float], list[float]] = defaultdict(list)
    for row in rows:
        if row.get("beta") is not None:
            accuracy[(row["seed"], row["repeat"], float(row["beta"]))].append(float(row["accuracy"]))
    gains = []
    for seed, repeat in {(seed, repeat) for seed, repeat, _ in accuracy}:
        paper, vae = accuracy.get((seed, repeat, PAPER_BETA)), accuracy.get((seed, repeat, 1.0))
        if paper and vae:
            gains.append(float(sum(paper) / len(paper) - sum(vae) / len(vae)))
    return gains


def _scores_of(part: Part, measured: Measured, metric: str) -> dict[str, list[float]]:
    """Each representation's samples of ``metric``: baselines over metric seeds, VAE, β-VAE and the
    successors trained on this part over training seeds; in the baselines table's order."""
    samples = {name: [values[metric] for values in measured.baselines[part.folder][name]
                      if values.get(metric) is not None] for name in BASELINES}
    column = headline(metric)
    for name, beta in (("vae", 1.0), ("beta_vae", PAPER_BETA)):
        samples[name] = [row[column] for row in measured.compare[part.folder]
                         if row["beta"] == beta and row.get(column) is not None]
    for objective, rows in measured.successors.get(part.folder, {}).items():
        samples[objective] = [row[column] for row in rows if row.get(column) is not None]
    return samples


def _baseline_order(parts: Sequence[Part], measured: Measured) -> Judgement:
    judged = []
    for part in parts:
        samples = _scores_of(part, measured, "beta_vae")
        for better, worse in (("vae", "pixels"), ("pca", "vae"), ("beta_vae", "pca")):
            verdict, effect = claims.judge_unpaired(samples[better], samples[worse])
            judged.append((f"{part.folder} {LABELS[better]} − {LABELS[worse]}", verdict, effect,
                           claims.EXPECTED["positive"]))
        verdict, effect = claims.judge_unpaired(samples["ica"], samples["pixels"])
        if effect.n < 2 or effect.se is None:
            same = INCONCLUSIVE
        else:  # "about equal": the difference stays within its spread
            same = HELD if verdict == INCONCLUSIVE else NOT_HELD
        judged.append((f"{part.folder} ICA − pixels", same, effect, claims.ABOUT_ZERO))
    return claims.summarised(judged)


def _baselines_section(parts: Sequence[Part], measured: Measured, scale: Scale) -> Section:
    tables = []
    for part in parts:
        header = ["model", "paper (its score)"] + [metric for metric in scale.metrics]
        cells = {metric: _scores_of(part, measured, metric) for metric in scale.metrics}
        body = []
        for name in cells[scale.metrics[0]]:
            line = [LABELS[name], PAPER_SCORES.get(name, "—")]
            for metric in scale.metrics:
                line.append(claims.Effect.of(cells[metric][name]).text(3).replace("+", ""))
            body.append(line)
        orders = [f"{metric}: " + " < ".join(LABELS[name] for name in sorted(
            cells[metric], key=lambda name, m=metric: _mean(cells[m][name]))) for metric in scale.metrics]
        tables.append(Table(header, body, f"{part.dataset}: mean ± 2 SE (baselines over metric seeds, "
                                          f"VAEs over training seeds). Order by mean: " + "; ".join(orders)))
    text = ("The paper's Table 1 with our numbers beside it, on each set with known factors. The paper "
            "scored on its own 2D shapes; ICA and PCA are fitted on rendered images, the untrained VAE is "
            "the architecture with random weights. Below the paper's rows, the β-VAE's successors where "
            "the study trained them, at the latent size of the β = 1 / β = 4 comparison, each at the "
            "setting in its label (the toolkit's dSprites comparison, docs/objectives.md).")
    return Section("Baselines, in the layout of the paper's Table 1", [text], tables, [])


def _metrics_section(scale: Scale) -> Section:
    """Each metric named with its variant: the paper, what it fits, and every setting it ran with."""
    from betavae import metrics
    from betavae.evaluation import metric_settings

    sizes = {"n_train": scale.n_train, "n_eval": scale.n_eval}
    body = []
    for name in scale.metrics:
        metric = metrics.get(name)
        settings = ", ".join(f"{key} = {value}" for key, value in metric_settings(name, sizes).items())
        body.append([metric.label, f"{name}: {metric.headline}", metric.reference, metric.predictor,
                     settings])
    text = ("Every disentanglement score below, on the runs and on the baselines, is one of these, with "
            "these settings (the seed of its points: 0 on the runs, 0, 1, … on the baselines). Defaults "
            "follow disentanglement_lib (Locatello et al. 2019); only the numbers of points differ by scale.")
    table = Table(["Metric", "Name, value", "Reference", "Fitted on the codes", "Settings"], body,
                  "The metrics and their settings")
    return Section("Metrics", [text], [table], [])


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else -math.inf


def _part_text(part: Part, scale: Scale) -> str:
    text = (f"{part.arch} on {part.dataset}, {scale.steps[part.folder]:,} steps at batch {scale.batch_size}; "
            f"β_norm {', '.join(f'{b:g}' for b in scale.beta_norms)} × latent size "
            f"{', '.join(map(str, scale.latent_dims))} × {scale.seeds_of_grid} seed(s); β = 1 against β = "
            f"{PAPER_BETA:g} at latent size {scale.compare_latent} × {scale.seeds} seed(s)")
    if scale.successors_of(part):
        text += (f"; {', '.join(LABELS[name] for name in scale.successors_of(part))} at that size × "
                 f"{scale.seeds_of_successors} seed(s)")
    return text + "."


def _caption(path: Path, part: Part, scale: Scale) -> str:
    """What a figure of a part shows, from the name its drawing function gives it
    (:mod:`betavae.viz.sweep`, :func:`~betavae.viz.traversals.traversal_figure`, the transfer
    figure); a name none of them gives keeps its folder and stem."""
    from betavae import metrics
    from betavae.transfer import PLOT_FILE

    stem, seeds = path.stem, f"{scale.seeds_of_grid} seed{'s' if scale.seeds_of_grid != 1 else ''}"
    if stem == "loss_vs_beta_norm":
        return (f"Held-out loss against β_norm, one line per latent size, mean ± std over the grid's "
                f"{seeds}; the star marks β = 1.")
    if stem.startswith("heatmap_") and stem.removeprefix("heatmap_") in metrics.METRICS:
        label = metrics.get(stem.removeprefix("heatmap_")).label
        return f"{label} over β_norm × latent size, each cell the mean ± std over the grid's {seeds}."
    if re.fullmatch(r"recon_z\d+", stem):
        return (f"Held-out images (first column) and their reconstructions by each β_norm of the grid, "
                f"one column per run, at latent size {stem.removeprefix('recon_z')} (first seed); claim 2 "
                f"measures their blur.")
    if stem == "traversal":
        return (f"Latent traversals of the β = {PAPER_BETA:g} run {path.parent.name}: each row one latent "
                f"dimension (by KL, largest first) from −2.5 to 2.5, the others at a held-out image's code.")
    if path.name == PLOT_FILE:
        return (f"Few-label transfer ({part.transfer_task}): a softmax classifier on the frozen encoder's μ "
                f"of each β = 1 and β = {PAPER_BETA:g} run; held-out loss and accuracy against the number "
                f"of labels (band: ± 1 std over {scale.transfer_repeats} draws).")
    folder = path.parent.parent.name if path.parent.name == "figures" else path.parent.name
    return f"{folder}: {stem.replace('_', ' ')}"
