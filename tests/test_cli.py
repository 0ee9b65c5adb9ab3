"""The ``betavae`` command end to end, and its one-line errors."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from betavae.checks import comma_separated
from betavae.cli import Command, app, train
from betavae.config import FLAGS, flagged_fields
from betavae.data import DATASETS
from betavae.metrics import METRICS
from betavae.models import ARCHITECTURES
from betavae.options import shown_default
from betavae.runs import RunDir
from commands import run_cli


@pytest.mark.slow
def test_train_command_writes_a_complete_run_folder(tmp_path):
    script = Path(sys.executable).with_name("betavae")  # the console script pip installed beside python
    assert script.exists(), "the betavae script is not installed"
    out = tmp_path / "run"
    result = subprocess.run(
        [script, "train", "--dataset", "shapes", "--latent", "3", "--beta-norm", "0.02", "--steps", "20",
         "--batch-size", "16", "--test-size", "100", "--log-every", "10", "--no-progress", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"checkpoint:      {out / 'checkpoint.pt'}" in result.stdout
    assert f"reconstructions: {out / 'reconstructions.png'}" in result.stdout
    for name in ("config.toml", "checkpoint.pt", "metrics.json", "log.jsonl", "reconstructions.png"):
        assert (out / name).is_file(), name
    config = RunDir(out).read_config()
    assert (config.arch, config.latent_dim, config.beta_norm) == (None, 3, 0.02)  # arch chosen by image size
    assert RunDir(out).load_checkpoint()["derived"]["arch"] == "conv28"
    assert json.loads((out / "metrics.json").read_text())["test"]["num_images"] == 100


@pytest.mark.slow
def test_config_file_sets_options_and_flags_override_it(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(f'dataset = "shapes"\nlatent_dim = 2\nsteps = 12\nbatch_size = 8\ntest_size = 50\n'
                      f'beta = 2.0\nout = "{tmp_path / "from-file"}"\n')
    code, out, err = run_cli(["train", "--config", str(config), "--steps", "6", "--beta-norm", "0.01",
                              "--no-cuda-graph", "--no-progress"], capsys)
    assert code == 0, err
    run = RunDir(tmp_path / "from-file")
    saved = run.read_config()
    assert (saved.steps, saved.latent_dim, saved.beta, saved.beta_norm) == (6, 2, None, 0.01)
    assert saved.cuda_graph is False
    assert run.load_checkpoint()["step"] == 6


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["train", "--dataset", "cifar"],
            f"betavae: error: unknown dataset 'cifar'; choose one of: {', '.join(sorted(DATASETS))}",
        ),
        (
            ["train", "--arch", "vgg"],
            f"betavae: error: unknown architecture 'vgg'; choose one of: {', '.join(sorted(ARCHITECTURES))}",
        ),
        (
            ["train", "--recon", "l1"],
            "betavae: error: unknown reconstruction loss 'l1'; choose one of: bernoulli, gaussian, lmse, mse",
        ),
        (["train", "--colour"], "betavae train: error: No such option '--colour'"),
        (["train", "--steps", "many"], "betavae train: error: Invalid value for '--steps'"),
        (["train", "--beta", "1", "--beta-norm", "0.1"], "not both"),
        (["train", "--resume"], "--resume needs --out"),
    ],
)
def test_bad_input_is_a_one_line_error(args, message, capsys):
    code, out, err = run_cli(args, capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert message in err


def test_wrong_image_size_for_the_architecture_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_cli(
        ["train", "--dataset", "shapes", "--arch", "conv64", "--out", str(tmp_path / "r")], capsys
    )
    assert code == 1
    assert err.strip() == (
        "betavae: error: architecture conv64 takes 64×64 images, but the data is 28×28; use --arch conv28"
    )


def test_help_lists_the_training_options(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0
    for option in (
        "--dataset",
        "--arch",
        "--latent",
        "--beta-norm",
        "--recon",
        "--resume",
        "--config",
        "--no-cuda-graph",
    ):
        assert option in out


NOT_CONFIG_OPTIONS = {"config_file", "resume", "progress"}
"""The options of ``betavae train`` that are not config fields: where the config comes from, and the bar."""


def test_train_declares_no_option_the_config_does_not_generate():
    options = {param.name: param for param in train.params}
    assert set(options) - set(FLAGS) == NOT_CONFIG_OPTIONS
    assert set(FLAGS) <= set(options)  # every field with a flag has its option
    assert all(FLAGS[key] in options[key].opts for key in FLAGS)


def test_train_help_of_every_config_option_comes_from_its_field():
    context = click.Context(train)
    options = {param.name: param for param in train.params}
    for field, described in flagged_fields():
        text = options[field.name].get_help_record(context)[1]
        default = shown_default(field)
        assert text.endswith(f"  [default: {default}]") if default is not None else "[default:" not in text
        before, _, after = described.help.partition("{names}")  # a registry's names, read when shown
        assert before in text and after in text and "{names}" not in text, field.name


@pytest.mark.slow
def test_the_command_list_is_shown_without_loading_torch():
    # train's and sweep's options are made from the config, which takes in the objectives' options
    # (modules that import torch) only when one of those commands reads its options.
    script = ("import sys\nfrom betavae.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
              "    pass\nprint('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout and result.stdout.split()[-1] == "False"


@pytest.mark.slow
def test_module_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "betavae.cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "0.1.0" in result.stdout


def value_taking_options(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[list[str], str]]:
    """(command path, option) for every option of every command that takes a value."""
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from value_taking_options(command, (*path, name))
            continue
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag and not param.count:
                yield [*path, name], param.opts[0]


@pytest.mark.parametrize("command, option", list(value_taking_options(app)))
def test_every_option_that_takes_a_value_refuses_an_option_in_its_place(command, option, capsys):
    made = app
    for name in command:
        made = made.commands[name]
    assert isinstance(made, Command)  # else --help would be taken as the value, and the command would run
    code, out, err = run_cli([*command, option, "--help"], capsys)
    assert code == 2 and out == ""
    where = " ".join(["betavae", *command])
    assert err.startswith(f"{where}: error: {option} needs a value (") and len(err.splitlines()) == 1, err
    assert err.rstrip().endswith(f"got the option --help (see '{where} --help')"), err


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["transfer", "{tmp}/run", "--baselines", "--out", "{tmp}/out"],
            "betavae transfer: error: --baselines needs a value (comma-separated from pixels, pca, "
            "untrained, or none), got the option --out (see 'betavae transfer --help')",
        ),
        (
            ["train", "--eval", "--eval-every", "5", "--out", "{tmp}/out"],
            f"--eval needs a value (metrics measured during training, comma-separated: "
            f"{', '.join(METRICS)}, or all), got the option --eval-every",
        ),
        (
            ["train", "--out", "-h"],
            "betavae train: error: --out needs a value (run folder), got the option -h",
        ),
        (
            ["train", "--batch-size", "--steps", "3", "--out", "{tmp}/out"],
            "--batch-size needs a value (images per step), got the option --steps",
        ),
        (  # an option without help is described by its type
            ["evaluate", "{tmp}/run", "--seed", "--json"],
            "betavae evaluate: error: --seed needs a value (integer), got the option --json",
        ),
        (
            ["sweep", "--seeds", "--out", "{tmp}/out"],
            "--seeds needs a value (how many seeds (3: seeds 0, 1, 2) or a list (0,4,7)), "
            "got the option --out",
        ),
        (
            ["show", "traverse", "{tmp}/run", "--dims", "--gif"],
            "betavae show traverse: error: --dims needs a value",
        ),
    ],
)
def test_an_option_given_where_a_value_belongs_is_a_usage_error_before_any_work(
    args, message, tmp_path, capsys
):
    code, out, err = run_cli([arg.format(tmp=tmp_path) for arg in args], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert message in err
    assert list(tmp_path.iterdir()) == []  # not --out, not anything else


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--seed", "-1"], "--seed must be a whole number from 0 to 4294967295, got -1"),
        (["train", "--latent", "-3"], "--latent must be a positive integer, got -3"),
        (["show", "recon", "{tmp}/run", "--n", "-2"], "--n -2 draws no image; give --n 1 or more"),
    ],
)
def test_a_negative_number_is_a_value_that_reaches_the_options_own_check(args, message, tmp_path, capsys):
    code, _, err = run_cli([arg.format(tmp=tmp_path) for arg in args] + ["--out", tmp_path / "out"], capsys)
    assert code == 1 and err == f"betavae: error: {message}\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, flag, value",
    [
        (["train", "--eval", "mig,,sap", "--out", "{tmp}/out"], "--eval", "mig,,sap"),
        (["evaluate", "{tmp}/run", "--metrics", "mig,"], "--metrics", "mig,"),
        (["transfer", "{tmp}/run", "--labels", "10,,30", "--out", "{tmp}/out"], "--labels", "10,,30"),
        (
            ["transfer", "{tmp}/run", "--baselines", "pixels,,pca", "--out", "{tmp}/out"],
            "--baselines",
            "pixels,,pca",
        ),
        (["sweep", "--latent", "2", "--seeds", "0,,2", "--out", "{tmp}/out"], "--seeds", "0,,2"),
        (["sweep", "--latent", "2", "--metrics", ",mig", "--out", "{tmp}/out"], "--metrics", ",mig"),
        (["sweep", "--latent", "2,,4", "--out", "{tmp}/out"], "--latent", "2,,4"),
        (["sweep", "--latent", "2", "--eval", "mig, ", "--out", "{tmp}/out"], "--eval", "mig, "),
    ],
)
def test_every_list_option_reads_commas_the_same_way_and_refuses_an_empty_item(
    args, flag, value, tmp_path, capsys
):
    code, _, err = run_cli([arg.format(tmp=tmp_path) for arg in args], capsys)
    assert code == 1
    assert err == f"betavae: error: {flag} takes values separated by single commas, got {value!r}\n"
    assert list(tmp_path.iterdir()) == []


@given(
    st.lists(st.text(st.characters(blacklist_characters=","), min_size=1).filter(str.strip), min_size=1),
    st.lists(st.sampled_from(["", " ", "  "]), min_size=2, max_size=2),
)
def test_a_comma_separated_list_reads_back_its_items_whatever_the_spaces_around_them(items, spaces):
    text = ",".join(f"{spaces[0]}{item}{spaces[1]}" for item in items)
    assert comma_separated(text, "--x") == [item.strip() for item in items]


@pytest.mark.slow
def test_python_dash_m_betavae_is_the_betavae_command():
    """For an environment whose scripts are not on PATH: ``python -m betavae`` runs the same command."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "betavae", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("betavae, version "), done.stderr
