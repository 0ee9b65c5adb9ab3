"""Whether a run of the study learned: no verdict rests on a model that did not.

A model that has not learned its data (dSprites after 200 steps reconstructs at ~600 nats where a
trained one reaches ~80, and scores at the majority rate) says nothing about β: a claim judged on
it is noise. So every run gets a mark before any claim is judged:

- *trained* when its held-out reconstruction is within :data:`~betavae.study.design.TRAINED_FACTOR`
  of the reference for its dataset, architecture and loss (:data:`~betavae.study.design.REFERENCE_RECON`);
- or, for a run that reconstructs worse on purpose (a large β), when its training loss has
  flattened (:func:`curve_flattened`) and the least-regularised run of its sweep with the same seed
  and latent size passed the first test: the sweep can learn, and this run stopped improving;
- where no reference exists for a combination, a flattened curve alone, and the mark says so.

The functions are pure: rows and training curves in, marks out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from betavae.study.design import FLAT_TOLERANCE, REFERENCE_RECON, TRAINED_FACTOR


@dataclass(frozen=True)
class Mark:
    """A run's mark: trained or not, and the numbers that say so, in a few words."""

    trained: bool
    why: str


def curve_flattened(losses: Sequence[float], tolerance: float = FLAT_TOLERANCE) -> bool | None:
    """Whether a training loss curve (logged in order) has flattened: the last quarter of training
    lowered the loss (mean over the last quarter against the quarter before) by at most ``tolerance``
    of what the whole run lowered it (first entry against the last quarter). A curve that never fell
    is flat. None with fewer than eight points, too few to tell.

    Relative to the run's own improvement, not to the loss's value: a heavily regularised run (a large
    β under squared error) converges slowly from a high loss, and is judged by how much of its way it
    has come, as a β = 1 run is."""
    values = [value for value in losses if math.isfinite(value)]
    if len(values) < 8:
        return None
    quarter = len(values) // 4
    last = sum(values[-quarter:]) / quarter
    before = sum(values[-2 * quarter:-quarter]) / quarter
    improvement = values[0] - last
    return bool(improvement <= 0 or before - last <= tolerance * improvement)


def reference_of(row: Mapping[str, Any]) -> float | None:
    """The reference reconstruction for a row's dataset, architecture and loss, if one was measured.

    The references are sums over pixels: a run averaging over them (``recon_reduction`` mean) has none.
    """
    if row.get("recon_reduction", "sum") != "sum":
        return None
    return REFERENCE_RECON.get((row.get("dataset"), row.get("arch"), row.get("recon")))


def _close_to_reference(row: Mapping[str, Any]) -> tuple[bool | None, str]:
    reference, recon = reference_of(row), row.get("test.recon")
    if reference is None or recon is None or not math.isfinite(recon):
        return None, "no reference reconstruction for this set, network and loss"
    ratio = recon / reference
    return ratio <= TRAINED_FACTOR, (f"reconstruction {recon:.3g} = {ratio:.2f}× the trained reference "
                                     f"{reference:g}")


def marks(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mark]:
    """Each row's :class:`Mark`, by its ``run`` (rows of one sweep: ``run``, ``seed``, ``latent_dim``,
    ``beta``, ``dataset``, ``arch``, ``recon``, ``test.recon`` and ``flat``, whether its curve
    flattened)."""
    rows = list(rows)
    close = {row["run"]: _close_to_reference(row) for row in rows}
    anchors: dict[tuple[Any, Any], Mapping[str, Any]] = {}
    for row in rows:
        key = (row["seed"], row["latent_dim"])
        if row.get("beta") is not None and (key not in anchors or row["beta"] < anchors[key]["beta"]):
            anchors[key] = row
    result = {}
    for row in rows:
        passed, text = close[row["run"]]
        flat = row.get("flat")
        if passed:
            result[row["run"]] = Mark(True, text)
            continue
        anchor = anchors.get((row["seed"], row["latent_dim"]))
        if passed is None:
            state = "flat" if flat else "still falling"
            result[row["run"]] = Mark(bool(flat), f"{text}; training loss {state}")
        elif flat and anchor is not None and anchor["run"] != row["run"] and close[anchor["run"]][0]:
            result[row["run"]] = Mark(True, f"{text}, but its training loss is flat and the β = "
                                            f"{anchor['beta']:.3g} run of its seed learned")
        else:
            state = "flat" if flat else ("still falling" if flat is False else "too short to tell")
            result[row["run"]] = Mark(False, f"{text}; training loss {state}")
    return result

