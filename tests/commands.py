"""Running the ``betavae`` command in the test's own process, as a user would from a shell."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from betavae.cli import main


def betavae(*args: object) -> None:
    """``betavae ARGS`` where no capture is at hand (a module fixture's), failing unless it exits 0."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in args])
    assert exit_info.value.code == 0


def run_cli(args: Sequence[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``betavae ARGS`` (each argument as text): its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err
