"""The reproduction study's report: each claim judged, the baselines table, the runs, every figure.

:mod:`betavae.study.runner` measures; this module turns the measurements into
:class:`~betavae.study.report.ClaimRow` verdicts (by :mod:`betavae.study.stats`'s rule, on
:mod:`betavae.study.claims`' per-seed effects) and the sections of the report, which
:func:`betavae.study.report.write_report` renders. No part of a claim is decided on a run that did
not train (:mod:`betavae.study.trained`) or, for a disentanglement comparison, when the β = 1
reference scores at chance.
"""

from __future__ import annotations

import math
import os
import platform
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from betavae.metrics.settings import headline_column as headline  # a metric's main column: mig.mig
from betavae.study import claims, stats
from betavae.study.claims import ABOUT_ZERO, EXPECTED, Judgement
from betavae.study.data import study_data, with_sharpness, write_study_data
from betavae.study.design import (
    BASELINES,
    EQUIVALENCE_MARGIN,
    LMSE_SWEEP,
    NO_GAIN_MARGIN,
    PAPER_BETA,
    PAPER_DATASET,
    PAPER_METRIC,
    PAPER_NET,
    PAPER_NET_BASELINE,
    PAPER_NET_ROWS,
    PAPER_SAYS,
    PAPER_SCORES,
    POSTER_DIR,
    REPORT_SAYS,
    SATURATION,
    SCALES,
    SCORE_METRIC,
    SUCCESSORS,
    TRAINED_FACTOR,
    WEAK_CLASSIFIERS,
    Measured,
    Part,
    Scale,
)
from betavae.study.report import ClaimRow, Figure, Report, Section, Table, write_report
from betavae.study.stats import Evidence

RECON, KL = "test.recon", "test.kl"
SEPARATES = "separates"  # the relation of an F-test part: settings differ beyond seed noise
LABELS = {"pixels": "Raw pixels", "pca": "PCA", "ica": "ICA", "untrained": "VAE untrained",
          "vae": "VAE (β = 1)", "beta_vae": f"β-VAE (β = {PAPER_BETA:g})",
          "beta_tc": f"β-TCVAE (β = {SUCCESSORS['beta_tc']['beta']:g})",
          "factor": f"FactorVAE (γ = {SUCCESSORS['factor']['factor_gamma']:g})",
          "capacity": f"capacity annealing (γ = {SUCCESSORS['capacity']['capacity_gamma']:g}, "
                      f"C to {SUCCESSORS['capacity']['capacity_max']:g} nats)",
          "dip": f"DIP-VAE II (λ_od = {SUCCESSORS['dip']['dip_lambda_od']:g})",
          "untrained_fc": f"VAE untrained, the paper's network ({PAPER_NET})",
          "vae_fc": f"VAE (β = 1), the paper's network ({PAPER_NET})",
          "beta_vae_fc": f"β-VAE (β = {PAPER_BETA:g}), the paper's network ({PAPER_NET})"}
NAMED_RUNS = 3  # an untrained part names up to this many of its runs


def write_study_report(out: Path, scale: Scale, parts: Sequence[Part], measured: Measured,
                       timings: dict[str, float], skipped: list[str], command: str,
                       build_poster: Callable[[], bool] | None = None) -> Path:
    """Judge the claims, lay out the sections and write ``report.html`` and ``report.md`` into ``out``, and
    ``study.json`` beside them.

    ``build_poster`` is called once ``study.json`` is written (the poster is drawn from it) and before the
    report, which then links the poster when it says it was built and lists the time it took."""
    factor_parts = [part for part in parts if part.factors]
    rows = [
        _claim(1, "Larger β (β_norm), or a smaller latent space, gives a worse held-out reconstruction "
                  "(the reconstruction term; KL shown apart; the latent size compared at a fixed raw β).",
               parts, _loss_claim(parts, measured)),
        _claim(2, "Reconstructions get blurrier as β grows (high-frequency share of held-out "
                  "reconstructions against log β_norm).", parts,
               _blur_claim(parts, measured)),
        _claim(3, f"β-VAE (β = {PAPER_BETA:g}) is more disentangled than the VAE (β = 1), on each metric.",
               parts, _beta_vs_vae(factor_parts, measured, scale)),
        _claim(4, "Too large a β lowers disentanglement again: the paper's score at the largest β_norm is "
                  "below its score at the best interior β_norm.", parts,
               claims.judged([(part.folder, EXPECTED["positive"],
                               _grid_effect(measured, part, claims.fall_past_peak, headline(SCORE_METRIC)))
                              for part in factor_parts])),
        _claim(5, "Larger latent spaces keep high disentanglement up to larger β_norm: the paper's score "
                  "falls less from low to high β_norm at larger latent sizes.", parts,
               claims.judged([(part.folder, EXPECTED["positive"],
                               _grid_effect(measured, part, claims.reach_gain, headline(SCORE_METRIC)))
                              for part in factor_parts])),
        *_saturation_claims(factor_parts, measured, scale),
        *_transfer_claims(parts, measured),
        _claim(8, f"The baselines keep the paper's order on its score: ICA ≈ pixels (within "
                  f"{EQUIVALENCE_MARGIN:g}) < VAE < PCA < β-VAE.", parts,
               _baseline_order(factor_parts, measured)),
    ]
    baselines = {part.folder: _baseline_rows(part, measured, scale) for part in factor_parts}
    sections = [_metrics_section(scale), _baselines_section(factor_parts, baselines, scale),
                _every_metric_section(factor_parts, measured, scale),
                _lmse_section(parts, measured, scale, out)]
    for part in parts:
        sections.append(Section(f"{part.dataset}: runs, grid and figures", [_part_text(part, scale)],
                                _run_tables(part, measured, scale),
                                [Figure(path, _caption(path, part, scale))
                                 for path in measured.figures.get(part.folder, [])]))
    write_study_data(out, study_data(scale, parts, measured, rows, baselines, command, stats.RULE))
    built = False
    if build_poster is not None:
        started = time.perf_counter()
        built = build_poster()
        timings["poster"] = time.perf_counter() - started
    report = Report(
        title="β-VAE, reproduced", command=command, scale=f"{scale.name}: {scale.why}", rule=stats.RULE,
        claims=rows, sections=sections, environment=environment(), timings=timings, skipped=skipped,
        poster=f"{POSTER_DIR}/index.html" if built else None)
    html_path, _ = write_report(report, out)
    return html_path


def _claim(number: int | str, claim: str, parts: Sequence[Part], judgement: Judgement) -> ClaimRow:
    numeral = int(str(number).rstrip("b"))
    return ClaimRow(number, claim, _paper_column(numeral, parts), REPORT_SAYS[number], judgement.ours,
                    judgement.verdict, judgement.why, judgement.parts)


def _paper_column(number: int, parts: Sequence[Part]) -> str:
    """The paper's result, with its numbers only where the study has the set they were measured on."""
    if number in (3, 8) and PAPER_DATASET not in {part.dataset for part in parts}:
        return ("shown on its 2D shapes (dSprites, Fig. 6), which this scale does not train: no numbers "
                "beside ours")
    return PAPER_SAYS[number]


# --- what a part rests on ------------------------------------------------------------------------


def _resting_on(evidence: Evidence, rows: Iterable[Mapping[str, Any]]) -> Evidence:
    """``evidence``, undecidable when any run it rests on did not train (named in the reason)."""
    rows = list(rows)
    untrained = [row["run"] for row in rows if not row.get("trained", False)]
    return evidence.blocked(_not_trained(untrained, len(rows))) if untrained else evidence


def _not_trained(runs: Sequence[str], count: int) -> str:
    named = ", ".join(runs[:NAMED_RUNS]) + (", …" if len(runs) > NAMED_RUNS else "")
    return f"not trained: {len(runs)} of {count} runs ({named})"


def _chance(metric: str, factors: int) -> float:
    """A metric's value for a code that knows nothing: the share of the commonest factor for the two
    classifier scores (the factor fixed is drawn uniformly), 0 for the information-based ones."""
    return 1 / factors if metric in ("beta_vae", "factor_vae") else 0.0


def _reference_above_chance(evidence: Evidence, reference_rows: Sequence[Mapping[str, Any]], column: str,
                            chance: float) -> Evidence:
    """``evidence``, undecidable unless the comparison's β = 1 reference scores above chance (p < α)."""
    if not evidence.decidable:
        return evidence
    margins = claims.above_chance(reference_rows, column, chance)
    above = stats.mean_effect(margins, "positive")
    if above.p_held is not None and above.p_held < stats.ALPHA:
        return evidence
    if len(margins) >= stats.MIN_SEEDS and len(set(margins)) == 1 and margins[0] > 0:
        return evidence  # every seed the same score above chance (a saturated score): no spread to test

    mean = np.mean([row[column] for row in reference_rows if row.get(column) is not None] or [math.nan])
    return evidence.blocked(f"the β = 1 reference is not clearly above chance ({mean:.3f} against "
                            f"{chance:.3f}; {above.text()})")


# --- the claims ----------------------------------------------------------------------------------


def _loss_claim(parts: Sequence[Part], measured: Measured) -> Judgement:
    pieces = []
    for part in parts:
        grid = measured.grid[part.folder]
        for column, name, expect in ((RECON, "reconstruction", "positive"), (KL, "KL", "negative")):
            slopes = claims.slope_per_seed(grid, "beta_norm", column, "latent_dim")
            pieces.append((f"{part.folder} {name}/log β_norm", EXPECTED[expect],
                           _resting_on(stats.mean_effect(slopes, expect), grid)))
        fixed = grid + measured.figure_runs.get(part.folder, [])
        effects = claims.slope_at_fixed_beta(fixed, RECON)
        evidence = (stats.mean_effect(effects, "negative") if effects else Evidence(
            "t", math.nan, 0, reason="no two runs of a seed share a raw β at two latent sizes"))
        pieces.append((f"{part.folder} reconstruction/log M at fixed β", EXPECTED["negative"],
                       _resting_on(evidence, _sharing_beta(fixed))))
    return claims.judged(pieces)


def _blur_claim(parts: Sequence[Part], measured: Measured) -> Judgement:
    pieces = []
    for part in parts:
        blur = measured.blur[part.folder]
        slopes = claims.slope_per_seed(blur, "beta_norm", "ratio", "latent_dim")
        evidence = _resting_on(stats.mean_effect(slopes, "negative"), blur)
        pieces.append((part.folder, EXPECTED["negative"], evidence))
    return claims.judged(pieces)


def _sharing_beta(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows that share their seed's raw β with a row of another latent size (what the fixed-β
    comparison rests on)."""
    return [row for groups in claims.same_beta_groups(rows).values() for members in groups for row in members]


def _beta_vs_vae(parts: Sequence[Part], measured: Measured, scale: Scale) -> Judgement:
    pieces = []
    for part in parts:
        rows = measured.compare[part.folder]
        reference = [row for row in rows if row["beta"] == 1.0]
        for metric in scale.metrics:
            column = headline(metric)
            evidence = stats.mean_effect(claims.paired_differences(rows, column, "beta", PAPER_BETA, 1.0),
                                         "positive")
            evidence = _reference_above_chance(_resting_on(evidence, rows), reference, column,
                                               _chance(metric, measured.factor_counts[part.folder]))
            pieces.append((f"{part.folder} {metric}", EXPECTED["positive"], evidence))
    return claims.judged(pieces)


def _grid_effect(measured: Measured, part: Part, effect: Callable[[list[dict[str, Any]], str], list[float]],
                 column: str) -> Evidence:
    """A claim about the grid's ``column`` (claims 4 and 5): ``effect``'s per-seed values, expected
    positive, resting on every run of the grid."""
    grid = measured.grid[part.folder]
    return _resting_on(stats.mean_effect(effect(grid, column), "positive"), grid)


def _saturation_claims(parts: Sequence[Part], measured: Measured, scale: Scale) -> list[ClaimRow]:
    if SCORE_METRIC not in scale.metrics or not parts:
        return []
    score = headline(SCORE_METRIC)
    saturation, weaker = [], []
    for part in parts:
        grid = measured.grid[part.folder]
        saturation.append((f"{part.folder} share of runs scoring ≥ {SATURATION:.0%}, minus ½",
                           EXPECTED["positive"],
                           _resting_on(stats.coarse_effect(claims.share_at_least(grid, score, SATURATION),
                                                           "positive"), grid)))
        for metric in scale.metrics:
            if metric != SCORE_METRIC:
                saturation.append((f"{part.folder} {metric}", SEPARATES, _resting_on(
                    stats.separation(claims.setting_groups(grid, headline(metric))), grid)))
        weak = measured.weak[part.folder]  # each with the score's own classifier on the same points
        for name in WEAK_CLASSIFIERS:
            weaker.append((f"{part.folder} {name}", SEPARATES,
                           _resting_on(stats.separation(claims.setting_groups(weak, name)), weak)))
            fewer = claims.share_difference(weak, name, "default", SATURATION)
            weaker.append((f"{part.folder} {name}: share ≥ {SATURATION:.0%} minus the score's",
                           EXPECTED["negative"], _resting_on(stats.coarse_effect(fewer, "negative"), weak)))
    return [
        _claim(6, f"The paper's score saturates (most runs ≥ {SATURATION:.0%}) while the later metrics "
                  "separate the grid's settings from seed noise (F test of settings, seeds as replicates).",
               parts, claims.judged(saturation)),
        _claim("6b", "The report's hypothesis: a less expressive classifier (strong L2, or few iterations, "
                     "on standardised features) makes the score informative again: it separates the "
                     "settings, and fewer runs saturate.", parts, claims.judged(weaker)),
    ]


def _transfer_claims(parts: Sequence[Part], measured: Measured) -> list[ClaimRow]:
    rows = []
    for part in parts:
        if part.folder not in measured.transfer:
            continue
        gains = claims.transfer_gain_per_seed(measured.transfer[part.folder], PAPER_BETA, 1.0)
        compare = measured.compare[part.folder]
        if part.dataset == "mnist":
            evidence = _resting_on(stats.no_gain(gains, NO_GAIN_MARGIN), compare)
            judgement = claims.judged([(f"{part.folder} accuracy gain", f"< {NO_GAIN_MARGIN:g}", evidence)])
            claim = (f"The report's finding: a β-VAE encoder (β = {PAPER_BETA:g}) does not improve few-label "
                     f"MNIST classification over β = 1 by {NO_GAIN_MARGIN:g} or more (accuracy gain per "
                     "training seed, averaged over label counts and draws).")
        else:
            evidence = _resting_on(stats.mean_effect(gains, "positive"), compare)
            judgement = claims.judged([(f"{part.folder} accuracy gain", EXPECTED["positive"], evidence)])
            task = (part.transfer_task or "").removeprefix("factor:")
            claim = (f"A β-VAE encoder helps predict the {task} of {part.dataset} images from few labels "
                     "(accuracy gain over β = 1 per training seed).")
        rows.append(_claim(7, claim, parts, judgement))
    return rows


def scores_of(part: Part, measured: Measured, metric: str) -> dict[str, list[float]]:
    """Each representation's samples of ``metric``: baselines over metric seeds, VAE, β-VAE and the
    successors trained on this part over training seeds; in the baselines table's order."""
    baselines = measured.baselines[part.folder]
    column = headline(metric)

    def scored(rows: Sequence[Mapping[str, Any]], key: str, beta: float | None = None) -> list[float]:
        """The values of ``key`` the rows have (only those at ``beta``, when given)."""
        return [row[key] for row in rows
                if row.get(key) is not None and (beta is None or row["beta"] == beta)]

    samples = {name: scored(baselines[name], metric) for name in BASELINES}
    for name, beta in (("vae", 1.0), ("beta_vae", PAPER_BETA)):
        samples[name] = scored(measured.compare[part.folder], column, beta)
    for objective, rows in measured.successors.get(part.folder, {}).items():
        samples[objective] = scored(rows, column)
    if part.folder in measured.paper_net:  # the paper's own network, as its table measured it
        samples["untrained_fc"] = scored(baselines.get(PAPER_NET_BASELINE, []), metric)
        for name, beta in (("vae_fc", 1.0), ("beta_vae_fc", PAPER_BETA)):
            samples[name] = scored(measured.paper_net[part.folder], column, beta)
    return samples


def _baseline_order(parts: Sequence[Part], measured: Measured) -> Judgement:
    pieces = []
    for part in parts:
        samples = scores_of(part, measured, SCORE_METRIC)
        compare = measured.compare[part.folder]
        reference = [row for row in compare if row["beta"] == 1.0]
        chance = _chance(SCORE_METRIC, measured.factor_counts[part.folder])
        evidence = stats.group_equivalence(samples["ica"], samples["pixels"], EQUIVALENCE_MARGIN)
        pieces.append((f"{part.folder} ICA − pixels", ABOUT_ZERO, evidence))
        for better, worse in (("vae", "pixels"), ("pca", "vae"), ("beta_vae", "pca")):
            evidence = stats.group_difference(samples[better], samples[worse])
            # the trained models' parts rest on the comparison's runs, and on its β = 1 reference learning
            evidence = _reference_above_chance(_resting_on(evidence, compare), reference,
                                               headline(SCORE_METRIC), chance)
            name = f"{part.folder} {LABELS[better]} − {LABELS[worse]}"
            pieces.append((name, EXPECTED["positive"], evidence))
    return claims.judged(pieces)


def _spread(values: Sequence[float]) -> str:
    """``0.953 ± 0.031 (3 seeds)``: the mean and its 90 % t interval's half-width, or the one value."""
    finite = [value for value in values if value is not None and math.isfinite(value)]
    if not finite:
        return "—"
    unit = f"({len(finite)} seed{'s' if len(finite) != 1 else ''})"
    if len(finite) < 2:
        return f"{finite[0]:.3f} {unit}"
    return f"{np.mean(finite):.3f} ± {stats.half_width(finite):.3f} {unit}"


def _baselines_section(parts: Sequence[Part], baselines: Mapping[str, list[dict[str, Any]]],
                       scale: Scale) -> Section:
    """The baselines tables, from each part's rows (:func:`_baseline_rows`, which study.json holds too)."""
    tables = []
    for part in parts:
        with_paper = part.dataset == PAPER_DATASET  # the paper's numbers only beside its own set
        metrics = scale.metrics_of(part)
        header = ["model", *(["paper (its score, Fig. 6)"] if with_paper else []), *metrics]
        rows = baselines[part.folder]
        body = [[row["label"], *([row["paper"] or "—"] if with_paper else []),
                 *(_spread(row["scores"][metric]) for metric in metrics)] for row in rows]
        orders = [f"{metric}: " + " < ".join(row["label"] for row in sorted(
            (row for row in rows if row["scores"][metric]),
            key=lambda row, m=metric: _mean(row["scores"][m]))) for metric in metrics]
        tables.append(Table(header, body, f"{part.dataset}: mean ± the 90 % t interval's half-width "
                                          "(baselines over metric seeds, VAEs over training seeds). Order "
                                          "by mean: " + "; ".join(orders)))
    text = ("The paper's baselines table (its Fig. 6) with our numbers, on each set with known factors; "
            "the paper's own numbers stand only beside dSprites, the set it measured them on. ICA and PCA "
            "are fitted on rendered images, the untrained VAE is the architecture with random weights. "
            "Below the paper's rows, the β-VAE's successors where the study trained them, at the latent "
            "size of the β = 1 / β = 4 comparison, each at the setting in its label "
            "(docs/guide/objectives.md). Where the scale trains it, the paper's own network (fully "
            f"connected, {PAPER_NET}) at β = 1 and β = {PAPER_BETA:g} and untrained, and a column of the "
            f"score as the paper ran it ({PAPER_METRIC}) beside the reference's: what is known and assumed "
            "of the paper's protocol is in docs/notes/paper-baselines-protocol.md.")
    return Section("Baselines, in the layout of the paper's table", [text], tables, [])


def _baseline_rows(part: Part, measured: Measured, scale: Scale) -> list[dict[str, Any]]:
    """The baselines table of ``part`` as data (the report's table and study.json): each row's label, the
    paper's number beside it (on the paper's set) and its samples of each metric."""
    metrics = scale.metrics_of(part)
    cells = {metric: scores_of(part, measured, metric) for metric in metrics}
    paper = part.dataset == PAPER_DATASET
    return [{"name": name, "label": LABELS[name],
             "paper": PAPER_SCORES.get(PAPER_NET_ROWS.get(name, name)) if paper else None,
             "scores": {metric: cells[metric][name] for metric in metrics}}
            for name in cells[metrics[0]]]


def _every_metric_section(parts: Sequence[Part], measured: Measured, scale: Scale) -> Section:
    """Claims 4 and 5 on every metric (the claims judge the paper's score), and which metrics separate
    the grid's settings from seed noise at all: a metric that does not cannot decide either claim."""
    body = []
    for part in parts:
        grid = measured.grid[part.folder]
        chance_of = {metric: _chance(metric, measured.factor_counts[part.folder]) for metric in scale.metrics}
        for metric in scale.metrics:
            column = headline(metric)
            separation = _resting_on(stats.separation(claims.setting_groups(grid, column)), grid)
            fall = _grid_effect(measured, part, claims.fall_past_peak, column)
            reach = _grid_effect(measured, part, claims.reach_gain, column)
            values = [row[column] for row in grid if row.get(column) is not None]
            above = ((np.mean(values) - chance_of[metric]) / (1 - chance_of[metric])) if values else math.nan
            separates = _alone(separation)
            body.append([part.folder, metric, f"{chance_of[metric]:.3f}", f"{above:.3f}", separation.text(),
                         separates.verdict + (f": {separates.why}" if separates.verdict == stats.INCONCLUSIVE
                                              else ""),
                         fall.text(), _alone(fall).verdict, reach.text(), _alone(reach).verdict])
    header = ["set", "metric", "chance", "mean above chance (share of the range)",
              "F of settings over seed noise", "separates", "claim 4: fall past the peak", "claim 4",
              "claim 5: reach gain", "claim 5"]
    text = (f"Claims 4 and 5 above are judged on the paper's score ({SCORE_METRIC}), as the reproducibility "
            "report judged them; here they are on every metric. F is the between-setting variance of a "
            "metric over its within-setting (seed) variance across the grid: about 1 when the metric carries "
            "no signal about the setting, and then neither claim can be decided on it. Each metric's mean is "
            "also shown above its chance level, as a share of the range from chance to 1.")
    return Section("Claims 4 and 5 on every metric", [text], [Table(header, body, "Every metric on the grid")]
                   if body else [], [])


# What the log-MSE comparison shows of each run: label → column of its row (with its sharpness beside it).
LMSE_QUANTITIES = {"held-out squared error": "test.squared_error", "KL (nats)": KL,
                   "sharpness (reconstructions / inputs)": "sharpness"}
LMSE_FIGURE = "mse-against-lmse.png"


def lmse_effects(mse: Sequence[Mapping[str, Any]], lmse: Sequence[Mapping[str, Any]], column: str
                 ) -> tuple[list[float], int]:
    """Per seed, the mean over the grid's settings of log-MSE's run minus MSE's run in ``column``
    (runs paired by name: the same setting and seed), and the number of pairs left out because
    either run did not train or lacks the value."""
    others = {row["run"]: row for row in lmse}
    by_seed: dict[int, list[float]] = {}
    left_out = 0
    for row in mse:
        other = others.get(row["run"])
        if other is None:
            continue
        a, b = row.get(column), other.get(column)
        usable = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (a, b))
        if not (usable and row.get("trained") and other.get("trained")):
            left_out += 1
            continue
        by_seed.setdefault(int(row["seed"]), []).append(float(b) - float(a))
    return [float(np.mean(values)) for _, values in sorted(by_seed.items())], left_out


def effect_interval(effects: Sequence[float], parts: int) -> tuple[float, float] | None:
    """The Student t interval of the mean per-seed effect, each side at the report's level (ALPHA)
    divided by the ``parts`` shown beside it (Bonferroni), so that all of them hold together at the
    report's level; None below MIN_SEEDS seeds or at zero spread."""
    values = np.asarray(effects, dtype=float)
    if values.size < stats.MIN_SEEDS or values.max() == values.min():
        return None
    half = stats.half_width(values, parts)
    return float(values.mean()) - half, float(values.mean()) + half


def interval_text(effects: Sequence[float], parts: int) -> str:
    """``+1.23 (90 % CI +0.50 … +1.96, Bonferroni over 3; 3 seeds)``, or the mean alone and why."""
    if not effects:
        return "not measured"
    mean = float(np.mean(effects))
    seeds = f"{len(effects)} seed{'s' if len(effects) != 1 else ''}"
    interval = effect_interval(effects, parts)
    if interval is None:
        return f"{mean:+.3g} (no interval: {seeds})"
    return (f"{mean:+.3g} ({1 - 2 * stats.ALPHA:.0%} CI {interval[0]:+.3g} … {interval[1]:+.3g}, "
            f"Bonferroni over {parts}; {seeds})")


def _lmse_section(parts: Sequence[Part], measured: Measured, scale: Scale, out: Path) -> Section:
    """Finding (ours, not a claim of either paper): the grid trained with log-MSE instead of MSE."""
    from betavae.viz.paired_grids import paired_grid_figure

    compared = [part for part in parts if part.folder in measured.lmse]
    if not compared:
        why = f"this scale does not train it ({', '.join(_scales_with_lmse())} do)"
        return Section("Finding: log-MSE in place of MSE", [
            "The reproducibility report trained with squared error and noted, untested, that its logarithm "
            f"may be the right loss. Not measured here: {why}."], [], [])
    tables, figures = [], []
    for part in compared:
        quantities = dict(LMSE_QUANTITIES)
        if part.factors and SCORE_METRIC in scale.metrics:
            quantities[f"{SCORE_METRIC} score"] = headline(SCORE_METRIC)
        mse = with_sharpness(measured.grid[part.folder], measured.blur[part.folder])
        lmse = with_sharpness(measured.lmse[part.folder], measured.lmse_blur[part.folder])
        body = []
        for label, column in quantities.items():
            effects, left_out = lmse_effects(mse, lmse, column)
            body.append([label, _trained_mean(mse, column), _trained_mean(lmse, column),
                         interval_text(effects, len(quantities)), str(left_out)])
        tables.append(Table(["quantity", "MSE (mean of trained runs)", "log-MSE", "log-MSE − MSE per seed",
                             "pairs left out (a run not trained)"], body,
                            f"{part.dataset}: the grid's {len(scale.beta_norms)} β_norm × "
                            f"{len(scale.latent_dims)} latent sizes under each loss, runs paired by setting "
                            "and seed; each seed's effect is its mean over the settings"))
        path = paired_grid_figure(mse, lmse, quantities, ("MSE (the report's loss)", "log-MSE"),
                                  out / part.folder / LMSE_SWEEP / LMSE_FIGURE,
                                  f"{part.dataset}: the grid under MSE (solid) and log-MSE (dashed)")
        figures.append(Figure(path, f"{part.dataset}: the report's Figures 2–4 (held-out error and KL, "
                                    "sharpness, the score against β_norm) under both losses; means over the "
                                    "seeds of every run, trained or not (the table keeps the trained)"))
    text = ("The reproducibility report trained with squared error (MSE), which treats the Gaussian "
            "decoder's variance as a constant, and noted, untested, that its logarithm may be the right "
            "loss (D/2 · log MSE per image: the variance fitted to each image's error; Rybkin et al. "
            "2021's σ-VAE). Here the grid is trained again under it, same settings, seeds and lengths, and "
            "both are measured on the same scales: held-out squared error whatever loss trained, KL, "
            "sharpness and the score. This is a finding of ours, not a claim of either paper, so it has no "
            "verdict: each row gives the mean per-seed difference with its Student t interval, the "
            "intervals widened for the rows shown together (Bonferroni). A β means another balance under "
            "each loss: log-MSE's gradient is MSE's divided by twice the image's MSE, so the KL weighs less "
            "against a reconstruction that is already good.")
    return Section("Finding: log-MSE in place of MSE", [text], tables, figures)


def _trained_mean(rows: Sequence[Mapping[str, Any]], column: str) -> str:
    values = [row[column] for row in rows if row.get("trained") and isinstance(row.get(column), (int, float))
              and math.isfinite(row[column])]
    return f"{np.mean(values):.4g}" if values else "—"


def _scales_with_lmse() -> dict[str, Scale]:
    return {name: other for name, other in SCALES.items() if other.lmse_parts and name != "test"}


def _alone(evidence: Evidence) -> stats.PartVerdict:
    """``evidence`` judged as a claim of its own (the table beside the claims)."""
    return stats.judge([evidence])[1][0]


def _run_tables(part: Part, measured: Measured, scale: Scale) -> list[Table]:
    """Every run of the part with its loss terms, score and trained mark (✓ trained, ✗ not, with why)."""
    score = headline(SCORE_METRIC) if part.factors and SCORE_METRIC in scale.metrics else None
    tables = []
    for sweep, rows in (("grid", measured.grid.get(part.folder, [])),
                        ("β = 1 / β = 4", measured.compare.get(part.folder, [])),
                        ("the report's figure settings", measured.figure_runs.get(part.folder, [])),
                        (f"the paper's network ({PAPER_NET}), β = 1 / β = {PAPER_BETA:g}",
                         measured.paper_net.get(part.folder, [])),
                        ("the grid under log-MSE", measured.lmse.get(part.folder, []))):
        if not rows:
            continue
        body = []
        for row in sorted(rows, key=lambda row: (row["latent_dim"], row["beta"], row["seed"])):
            line = [row["run"], f"{row['beta_norm']:.3g}", f"{row['beta']:.3g}", str(row["latent_dim"]),
                    str(row["seed"]), _number(row.get(RECON)), _number(row.get(KL))]
            if score:
                line.append(_number(row.get(score)))
            line.append(("✓ " if row.get("trained") else "✗ ") + str(row.get("trained_why", "")))
            body.append(line)
        header = ["run", "β_norm", "β", "M", "seed", f"recon ({row['recon']})", "KL",
                  *([SCORE_METRIC] if score else []), "trained"]
        untrained = sum(not row.get("trained") for row in rows)
        tables.append(Table(header, body, f"{part.dataset}, {sweep}: {len(rows)} runs, {untrained} not "
                                          "trained (no verdict rests on those)"))
    return tables


def _number(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def _metrics_section(scale: Scale) -> Section:
    """Each metric named with its variant: the paper, what it fits, and every setting it ran with."""
    from betavae import metrics
    from betavae.metrics.settings import metric_settings

    sizes = scale.metric_sizes
    body = []
    for name in scale.metrics:
        metric = metrics.get(name)
        settings = ", ".join(f"{key} = {value}" for key, value in metric_settings(name, sizes).items())
        body.append([metric.label, f"{name}: {metric.headline}", metric.reference, metric.predictor,
                     settings])
    text = ("Every disentanglement score below, on the runs and on the baselines, is one of these, with "
            "these settings (the seed of its points: 0 on the runs, 0, 1, … on the baselines). Defaults "
            "follow disentanglement_lib (Locatello et al. 2019); only the numbers of points (and, at the "
            "test suite's scale, the pairs a point averages) differ by scale.")
    table = Table(["Metric", "Name, value", "Reference", "Fitted on the codes", "Settings"], body,
                  "The metrics and their settings")
    return Section("Metrics", [text], [table], [])


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else -math.inf


def _part_text(part: Part, scale: Scale) -> str:
    losses = (f"the grid with the {part.recon} loss" + (f", β = 1 against β = {PAPER_BETA:g} with the "
              f"{part.compare_recon} loss" if part.compare_recon != part.recon else ""))
    text = (f"{part.arch} on {part.dataset}, {scale.steps[part.folder]:,} steps at batch {scale.batch_size}, "
            f"{losses}; β_norm {', '.join(f'{b:g}' for b in scale.beta_norms)} × latent size "
            f"{', '.join(map(str, scale.latent_dims))} × {scale.grid_seeds_of(part)} seed(s); β = 1 against "
            f"β = {PAPER_BETA:g} at latent size {scale.compare_latent} × {scale.seeds} seed(s)")
    if scale.figure_betas and part.folder in scale.figure_parts:
        text += (f"; the report's figure settings, raw β {', '.join(f'{b:g}' for b in scale.figure_betas)} × "
                 f"latent size {', '.join(map(str, scale.figure_latents))} × {scale.seeds} seed(s)")
    if scale.successors_of(part):
        text += (f"; {', '.join(LABELS[name] for name in scale.successors_of(part))} at that size × "
                 f"{scale.seeds_of_successors} seed(s)")
    return (text + f". A run is trained (✓) when its held-out reconstruction is within {TRAINED_FACTOR:g}× a "
            "trained model's, or its loss has flattened while its seed's least-regularised run of the same "
            "latent size learned.")


def _caption(path: Path, part: Part, scale: Scale) -> str:
    """What a figure of a part shows, from the name its drawing function gives it
    (:mod:`betavae.viz.sweep`, :func:`~betavae.viz.traversals.traversal_figure`, the transfer
    figure); a name none of them gives keeps its folder and stem."""
    from betavae import metrics
    from betavae.transfer import PLOT_FILE

    count = scale.grid_seeds_of(part)
    stem, seeds = path.stem, f"{count} seed{'s' if count != 1 else ''}"
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


def environment() -> dict[str, str]:
    import sklearn
    import torch

    from betavae.device import resolve_device

    device = resolve_device("auto")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "device": f"{device.type} ({name})",
            "threads": str(torch.get_num_threads()), "cores": str(os.cpu_count()),
            "platform": platform.platform()}
