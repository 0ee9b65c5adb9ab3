"""A sweep's named variants: runs that differ in settings not a product of lists, crossed with seeds.

No test here trains: each checks how a grid of variants expands, is refused, is continued, and
what the sweep's state says of runs that would change under their names.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from betavae.errors import BetaVAEError
from betavae.runs import RunDir
from betavae.studies.grid import (
    build_spec,
    continue_grid,
    describe_size,
    expand_grid,
    grid_changes,
    spec_from_file,
)
from betavae.studies.results import format_table, result_rows
from betavae.studies.state import SweepState
from betavae.studies.sweep import held_runs

VARIANTS = [{"name": "default"}, {"name": "bf16", "precision": "bf16"}, {"name": "lr1e-3", "lr": 1e-3}]
TRAINING = {"dataset": "shapes", "arch": "conv28", "steps": 4, "lr": 1e-4, "device": "cpu"}


def variants_spec(variants=VARIANTS, seeds=(0, 1), **training):
    return build_spec({**TRAINING, **training, "variants": list(variants)}, {"seeds": list(seeds)})


def stored_sweep(out: Path, spec) -> None:
    """A sweep folder whose state holds ``spec``'s points, none run."""
    out.mkdir(parents=True, exist_ok=True)
    with RunDir(out).lock("betavae sweep"), SweepState(out) as state:
        state.sync(expand_grid(spec, out), spec)


def test_variants_cross_the_seeds_each_run_named_after_its_variant_and_seed(tmp_path):
    spec = variants_spec()
    points = expand_grid(spec, tmp_path)
    # Seed by seed: every variant's first seed comes before any second seed.
    assert [point.name for point in points] == [
        "default-s0", "bf16-s0", "lr1e-3-s0", "default-s1", "bf16-s1", "lr1e-3-s1"]
    assert points[4].values == {"variant": "bf16", "seed": 1}
    assert points[4].config.out == str(tmp_path / "bf16-s1")
    # A variant's keys are laid over the fixed ones, which the others keep.
    assert [(p.config.precision, p.config.lr, p.config.seed) for p in points[:3]] == [
        ("fp32", 1e-4, 0), ("bf16", 1e-4, 0), ("fp32", 1e-3, 0)]
    assert describe_size(spec) == "6 runs (3 variants × 2 seeds)"
    assert spec.varied() == ["variant", "seed"] and spec.variant_keys() == ["precision", "lr"]
    # A variant's β replaces the fixed one, in whichever form each gives it.
    vae = expand_grid(variants_spec([{"name": "vae", "beta": 1.0}], seeds=[0], beta_norm=0.01), tmp_path)[0]
    assert (vae.config.beta, vae.config.beta_norm) == (1.0, None)
    # Variants cross swept keys too, the variant's name first.
    swept = expand_grid(variants_spec(VARIANTS[:2], seeds=[0], beta_norm=[0.1, 1.0]), tmp_path)
    assert [point.name for point in swept] == [
        "default-bn0.1-s0", "default-bn1-s0", "bf16-bn0.1-s0", "bf16-bn1-s0"]


def test_a_grid_file_gives_its_variants_as_tables(tmp_path):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text('dataset = "shapes"\narch = "conv28"\nsteps = 4\nlr = 1e-4\ndevice = "cpu"\n'
                         '[[variants]]\nname = "default"\n[[variants]]\nname = "bf16"\nprecision = "bf16"\n'
                         '[[variants]]\nname = "lr1e-3"\nlr = 0.001\n[sweep]\nseeds = 2\n')
    assert spec_from_file(grid_file) == variants_spec()


    assert not (tmp_path / "sweep").exists()


def test_a_sweeps_variants_only_grow(tmp_path):
    stored = variants_spec()
    where = tmp_path / "sweep"

    def given(variants):
        return continue_grid(stored, build_spec({"variants": variants}, {}), {"variants"}, set(), out=where)

    grown = given([*VARIANTS, {"name": "batch32", "batch_size": 32}])
    assert [variant["name"] for variant in grown.variants] == ["default", "bf16", "lr1e-3", "batch32"]
    assert grid_changes(stored, grown) == [
        "extends the grid: variants + batch32 (2 new runs beside the 6 it had)"]
    changed = r"already holds variant bf16 with other settings \(precision bf16, not precision fp32\)"
    with pytest.raises(BetaVAEError, match=changed):
        given([{"name": "bf16", "precision": "fp32"}])
    with pytest.raises(BetaVAEError, match="variants default would shrink the grid of"):
        given(VARIANTS[:1])
    without = build_spec(TRAINING, {})
    with pytest.raises(BetaVAEError, match="variants would rename every run of"):
        continue_grid(without, variants_spec(), {"variants"}, set(), out=where)
    # Other keys given keep the stored variants: more steps for every run.
    longer = continue_grid(stored, build_spec({"steps": 8}, {}), {"steps"}, set(), out=where)
    assert longer.variants == stored.variants and longer.fixed["steps"] == 8


def test_results_name_each_runs_variant(tmp_path):
    out = tmp_path / "sweep"
    stored_sweep(out, variants_spec())
    rows, spec = result_rows(out)
    assert [(row["run"], row["variant"], row["precision"], row["lr"]) for row in rows[:3]] == [
        ("default-s0", "default", "fp32", 1e-4), ("bf16-s0", "bf16", "bf16", 1e-4),
        ("lr1e-3-s0", "lr1e-3", "fp32", 1e-3)]
    assert format_table(rows, spec).splitlines()[0].split()[:3] == ["variant", "seed", "status"]


def test_runs_that_would_change_under_their_names_are_refused_before_anything_runs(tmp_path):
    out = tmp_path / "sweep"
    stored_sweep(out, variants_spec(eval=["mig"], eval_n_train=300))
    with SweepState(out) as state:
        state.mark_done("default-s0", {})  # trained its 4 steps; the others were never started
    names = {"eval_n_train": "--mig-points", "steps": "--steps"}
    for changed, message in [
        ({"eval_n_train": 500}, "already holds run default-s0 made with another --mig-points (300, not 500)"),
        ({"eval": ["mig", "sap"]}, "made with another eval (mig, not mig+sap)"),
        ({"steps": 2}, "run default-s0 trained 4 steps, more than --steps 2; a sweep's runs only train on"),
    ]:
        spec = variants_spec(**{"eval": ["mig"], "eval_n_train": 300, **changed})
        with pytest.raises(BetaVAEError) as refused:
            held_runs(spec, out, names)
        assert message in str(refused.value), str(refused.value)
        with pytest.raises(BetaVAEError) as refused, SweepState(out) as state:
            state.sync(expand_grid(spec, out), spec, names)
        assert message in str(refused.value)
    more = variants_spec(eval=["mig"], eval_n_train=300, steps=8)
    assert held_runs(more, out) == []  # more steps are no change, and none of the runs has a checkpoint
    fewer_for_the_unstarted = variants_spec(variants=[{"name": "bf16", "precision": "bf16"}], eval=["mig"],
                                            eval_n_train=300, steps=2)
    held_runs(fewer_for_the_unstarted, out)  # a run not trained yet may be asked for fewer steps
