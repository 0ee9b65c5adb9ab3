"""The one error type users see.

Anything a user can cause (a bad option, a missing file, a diverged run) raises
:class:`BetaVAEError` with a message that says what to do. The CLI prints it as a
single line and exits non-zero; genuine bugs keep their trace-back.
"""

from __future__ import annotations

from collections.abc import Iterable


class BetaVAEError(Exception):
    """A user-facing problem, printed by the CLI as one line."""


def unknown_choice(kind: str, given: str, choices: Iterable[str]) -> BetaVAEError:
    """The error for a name that is not in a registry, listing the valid names."""
    listed = ", ".join(sorted(choices))
    return BetaVAEError(f"unknown {kind} {given!r}; choose one of: {listed}")
