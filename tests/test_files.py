"""betavae.files: the one helper every writing command uses to write only what it owns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from betavae import files
from betavae.errors import BetaVAEError

KIND = "betavae test"


def users_folder(folder: Path) -> dict[str, bytes]:
    """A folder of the user's: a few files (one nested) and what each holds."""
    contents = {"notes.txt": b"mine", "model.json": b'{"mine": 1}', "src/thesis.tex": b"\\begin"}
    for name, data in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return contents


def unchanged(folder: Path, contents: dict[str, bytes]) -> bool:
    return all((folder / name).read_bytes() == data for name, data in contents.items())


# -- folders ------------------------------------------------------------------------------------------


def test_a_new_or_empty_folder_is_claimed_and_marked_with_its_kind_and_format(tmp_path):
    for folder in (tmp_path / "new" / "deep", tmp_path / "empty"):
        if folder.name == "empty":
            folder.mkdir()
        assert files.claim_folder(folder, KIND, extra={"scale": "smoke"}) == folder
        mark = json.loads((folder / files.MARKER).read_text())
        assert mark == {"kind": KIND, "format": files.MARK_FORMAT, "files": {}, "scale": "smoke"}
        files.claim_folder(folder, KIND, extra={"scale": "smoke"})  # its own folder: claimed again


def test_a_folder_of_the_users_is_refused_in_one_line_naming_a_file_and_left_as_it_was(tmp_path):
    contents = users_folder(tmp_path)
    with pytest.raises(BetaVAEError, match=r"already holds files that betavae test did not write "
                                           r"\(model.json and 2 more\)") as error:
        files.claim_folder(tmp_path, KIND)
    assert "\n" not in str(error.value)
    assert unchanged(tmp_path, contents) and not (tmp_path / files.MARKER).exists()


def test_another_commands_folder_another_scale_a_newer_format_and_a_file_are_refused(tmp_path):
    files.claim_folder(tmp_path / "export", "betavae export")
    with pytest.raises(BetaVAEError, match="holds the output of betavae export, not of betavae test"):
        files.claim_folder(tmp_path / "export", KIND)
    files.claim_folder(tmp_path / "study", KIND, extra={"scale": "smoke"})
    with pytest.raises(BetaVAEError, match="with scale smoke, not small"):
        files.claim_folder(tmp_path / "study", KIND, extra={"scale": "small"})
    files.write_mark(tmp_path / "later", files.Mark(KIND, files.MARK_FORMAT + 1))
    with pytest.raises(BetaVAEError, match="newer betavae"):
        files.claim_folder(tmp_path / "later", KIND)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(BetaVAEError, match="is not a folder"):
        files.claim_folder(tmp_path / "a-file", KIND)


def test_a_folder_written_before_marks_is_adopted_only_when_the_command_recognises_it(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "figure.png").write_bytes(b"ours")
    with pytest.raises(BetaVAEError, match="did not write"):
        files.claim_folder(tmp_path / "old", KIND, adopt=lambda folder: False)
    files.claim_folder(tmp_path / "old", KIND, adopt=lambda folder: (folder / "figure.png").exists())
    assert files.read_mark(tmp_path / "old").kind == KIND
    assert (tmp_path / "old" / "figure.png").read_bytes() == b"ours"


def test_a_folder_is_deleted_only_when_its_mark_lists_every_file_in_it(tmp_path):
    demo = tmp_path / "demo"
    (demo / "runs").mkdir(parents=True)
    (demo / "index.html").write_text("page")
    (demo / "runs" / "model.json").write_text("{}")
    files.write_mark(demo, files.Mark(KIND, files=dict.fromkeys(files.files_of(demo), KIND)))
    (demo / "notes.txt").write_text("added by the user")
    with pytest.raises(BetaVAEError, match="also holds notes.txt that betavae did not write"):
        files.remove_owned_folder(demo, KIND)
    assert (demo / "notes.txt").read_text() == "added by the user"
    (demo / "notes.txt").unlink()
    files.remove_owned_folder(demo, KIND)
    assert not demo.exists()
    (tmp_path / "mine").mkdir()
    contents = users_folder(tmp_path / "mine")
    (tmp_path / "mine" / "demo.json").write_text("{}")  # a name a demo also has proves nothing
    with pytest.raises(BetaVAEError, match="no mark of betavae test's"):
        files.remove_owned_folder(tmp_path / "mine", KIND)
    assert unchanged(tmp_path / "mine", contents)


# -- single files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(files.RUN_FOLDER_FILES))
def test_no_output_lands_on_a_run_folders_own_files(tmp_path, name):
    with pytest.raises(BetaVAEError, match=f"{name} is a run folder's own file"):
        files.claim_file(tmp_path / name, KIND)


def test_a_file_is_replaced_only_when_this_command_wrote_it(tmp_path):
    (tmp_path / "mine.png").write_bytes(b"the user's")
    with pytest.raises(BetaVAEError, match="mine.png exists and betavae test did not write it"):
        files.write_file(tmp_path / "mine.png", b"ours", KIND)
    assert (tmp_path / "mine.png").read_bytes() == b"the user's"
    files.write_file(tmp_path / "ours.png", b"first", KIND)
    files.write_file(tmp_path / "ours.png", b"second", KIND)  # recorded in the folder's mark
    assert (tmp_path / "ours.png").read_bytes() == b"second"
    assert files.read_mark(tmp_path).files == {"ours.png": KIND} and files.read_mark(tmp_path).kind is None
    with pytest.raises(BetaVAEError, match="betavae other did not write it"):
        files.write_file(tmp_path / "ours.png", b"x", "betavae other")
    files.write_file(tmp_path / "mine.png", b"ours", KIND, ours=lambda path: True)  # the command's own proof


def test_a_mark_that_is_not_betavaes_proves_nothing_and_is_never_overwritten(tmp_path):
    (tmp_path / files.MARKER).write_text("a user's file of that name")
    (tmp_path / "figure.png").write_bytes(b"the user's")
    assert files.read_mark(tmp_path) is None and not files.made_by_betavae(tmp_path)
    with pytest.raises(BetaVAEError):
        files.claim_file(tmp_path / "figure.png", KIND)
    files.write_file(tmp_path / "new.png", b"ours", KIND)
    assert (tmp_path / files.MARKER).read_text() == "a user's file of that name"


def test_betavaes_folders_are_known_by_their_mark_config_and_lock_or_sweep_state(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.toml").write_text("")
    assert not files.made_by_betavae(tmp_path / "run")  # a config.toml alone may be anyone's
    (tmp_path / "run" / ".lock").write_text("")
    assert files.made_by_betavae(tmp_path / "run")
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.db").write_bytes(b"")
    assert files.made_by_betavae(tmp_path / "sweep")
    files.claim_folder(tmp_path / "marked", KIND)
    assert files.made_by_betavae(tmp_path / "marked")


# -- atomic replacement -------------------------------------------------------------------------------


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "figure.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), files.replacing(path) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert path.read_bytes() == b"old"
    assert [entry.name for entry in tmp_path.iterdir()] == ["figure.png"]
    with files.replacing(path) as temporary:
        assert files.is_temporary(temporary.name) and temporary.parent == tmp_path
        temporary.write_bytes(b"new")
    assert path.read_bytes() == b"new"
    assert not files.is_temporary(".notes.tmp")


# -- the user's cache ---------------------------------------------------------------------------------


def test_a_cached_value_is_computed_once_per_key_and_a_damaged_file_is_computed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []

    def compute(value):
        return lambda: calls.append(value) or {"score": value}

    key = {"dataset": "shapes", "seed": 0}
    assert files.cached("baselines", key, compute(0.5)) == {"score": 0.5}
    assert files.cached("baselines", key, compute(0.9)) == {"score": 0.5} and calls == [0.5]
    assert files.cached("baselines", {**key, "seed": 1}, compute(0.7)) == {"score": 0.7}
    [path] = [path for path in (tmp_path / "betavae" / "baselines").iterdir()
              if json.loads(path.read_text())["key"] == key]
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "value": {"score": 1.0}}))  # edited: its hash no longer matches
    assert files.cached("baselines", key, compute(0.6)) == {"score": 0.6}
    path.write_text(path.read_text()[:10])  # truncated
    assert files.cached("baselines", key, compute(0.4)) == {"score": 0.4} and calls == [0.5, 0.7, 0.6, 0.4]
    assert files.user_cache() == tmp_path / "betavae"


def test_a_cached_array_is_computed_once_per_key_and_a_damaged_or_half_written_one_again(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []

    def compute(value):
        return lambda: calls.append(value) or np.full((3, 4), value, dtype=np.uint8)

    key = {"set": "shapes", "values": [0.5, 1.0]}
    np.testing.assert_array_equal(files.cached_array("rendered", key, compute(1)), np.full((3, 4), 1))
    np.testing.assert_array_equal(files.cached_array("rendered", key, compute(2)), np.full((3, 4), 1))
    assert calls == [1]
    np.testing.assert_array_equal(files.cached_array("rendered", {**key, "values": [0.5]}, compute(3)), 3)
    [index] = [path for path in (tmp_path / "betavae" / "rendered").glob("*.json")
               if json.loads(path.read_text())["key"] == key]
    data = index.with_suffix(".npy")
    damaged = bytearray(data.read_bytes())
    damaged[-1] ^= 0xFF  # one pixel changed: its checksum no longer matches
    data.write_bytes(bytes(damaged))
    np.testing.assert_array_equal(files.cached_array("rendered", key, compute(4)), 4)
    data.write_bytes(data.read_bytes()[:-5])  # cut short
    np.testing.assert_array_equal(files.cached_array("rendered", key, compute(5)), 5)
    index.unlink()  # killed between the data and its index: the data alone is not trusted
    np.testing.assert_array_equal(files.cached_array("rendered", key, compute(6)), 6)
    assert calls == [1, 3, 4, 5, 6]
    np.testing.assert_array_equal(files.cached_array("rendered", key, compute(7)), 6)
    assert not [path for path in index.parent.iterdir() if files.is_temporary(path.name)]


def test_an_unwritable_cache_costs_only_the_time_to_compute(tmp_path, monkeypatch):
    (tmp_path / "betavae").write_text("a file where the cache's folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    for _ in range(2):
        array = files.cached_array("rendered", {"set": "shapes"}, lambda: calls.append(1) or np.ones(2))
        np.testing.assert_array_equal(array, np.ones(2))
    assert calls == [1, 1]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_file_written_atomically_has_the_mode_of_any_file_the_user_makes(tmp_path, umask):
    """Not the temporary's private 0600: a run folder shared on a cluster, or a demo site served by a
    web server running as another user, must be as readable as the user's umask makes any file."""
    import os

    before = os.umask(umask)
    try:
        files.atomic_write_text(tmp_path / "written.json", "{}")
        with files.replacing(tmp_path / "figure.png") as temporary:
            temporary.write_bytes(b"png")
        (tmp_path / "plain").write_text("")  # what open() makes under this umask
        os.mkdir(tmp_path / "folder")
    finally:
        os.umask(before)
    usual = (tmp_path / "plain").stat().st_mode & 0o777
    assert usual == 0o666 & ~umask
    for name in ("written.json", "figure.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == usual, name
    assert files.usual_mode(folder=True) == 0o777 & ~before
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o777 & ~umask
