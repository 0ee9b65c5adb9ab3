"""The errors a training run stops with, each saying what it left on disk and what to do next.

They are the project's error type (:class:`~betavae.errors.BetaVAEError`): the command line
prints them as one line. Kept apart from the loop so that the meters, the checkpoints and
packed training raise the same errors with the same words.
"""

from __future__ import annotations

from betavae.errors import BetaVAEError


class TrainingInterrupted(BetaVAEError):
    """Ctrl-C or SIGTERM: a checkpoint was saved and the run can be resumed."""

    exit_code = 130


class TrainingDiverged(BetaVAEError):
    """The loss or the weights became NaN or infinite; no checkpoint of such weights is written."""


class CheckpointNotWritten(BetaVAEError):
    """The disk is full or the folder unwritable; the previous checkpoint is still whole."""


def diverged(what: str, since: int, step: int, saved_step: int | None) -> TrainingDiverged:
    """The message of a run whose ``what`` became non-finite after step ``since``: true about what is kept."""
    again = (
        "train again with a lower --lr"
        if saved_step is None
        else "train a new run (another --out: a resumed run keeps its learning rate) with a lower --lr"
    )
    return TrainingDiverged(
        f"training diverged: the {what} became NaN or infinite between steps {since} and "
        f"{step}; {kept(saved_step)}; {again}, or check the data"
    )


def kept(saved_step: int | None) -> str:
    """What a run that stops on a fault leaves: the checkpoint on disk, if it wrote one."""
    return (
        "no checkpoint was written" if saved_step is None else f"the checkpoint of step {saved_step} is kept"
    )
