"""Packs: runs of a sweep that a worker trains together as one vectorised network (``--pack N``).

The driver (:mod:`betavae.studies.sweep`) takes queued runs that differ only in seed and β
(:func:`betavae.training.packed.pack_key`) up to ``N`` at a time and submits them as one
task; a worker (:func:`betavae.studies.worker.run_pack`) trains them with
:func:`~betavae.training.packed.train_packed`, then measures and collects each run as an
unpacked one, and returns one outcome per run. What a backend sees is an ordinary task
with a name (its first run's), so local workers and Ray run packs unchanged; the driver
maps a pack's outcome back to its runs, including a pack lost with its worker (each run
resumes from its checkpoint, packed again).

A pack's runs that cannot train as one (some fresh, some cut off at another step) train
in groups that can, or alone; a pack that fails as a whole (a run diverged, a refusal)
leaves each of its runs to be brought up to date alone, which records each one's own
failure. Only what the packed trainer trains is packed (the ``beta`` objective in fp32):
other runs are tasks of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

PACK_KEY = "pack"  # a pack's task holds its runs' tasks under this key


def next_pack(queue: list[str], key_of: Callable[[str], Hashable | None], size: int) -> list[str]:
    """Take the first run of ``queue`` and up to ``size - 1`` later ones with its pack key, in order.

    ``key_of(name)`` is None for a run that cannot be packed: it leaves alone. The runs taken
    are removed from ``queue``; the others keep their order.
    """
    first = queue.pop(0)
    key = key_of(first) if size > 1 else None
    if key is None:
        return [first]
    taken = [first]
    for name in list(queue):
        if len(taken) == size:
            break
        if key_of(name) == key:
            queue.remove(name)
            taken.append(name)
    return taken


def config_pack_key(config: dict[str, Any]) -> Hashable | None:
    """The pack key of a run's config (a state's dict), or None when the packed trainer cannot train it."""
    from betavae.config import TrainConfig
    from betavae.errors import BetaVAEError
    from betavae.training.packed import check_packable, pack_key

    train_config = TrainConfig.from_dict(config)
    try:
        check_packable([train_config])
    except BetaVAEError:
        return None
    return pack_key(train_config)


def pack_task(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """One task for the runs of ``tasks``: named after the first, holding them all."""
    if len(tasks) == 1:
        return tasks[0]
    first = tasks[0]
    return {**{key: first[key] for key in ("threads", "device", "submitted") if key in first},
            "name": first["name"], PACK_KEY: tasks}


def member_outcomes(outcome: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    """The outcome of each run of a task: a pack's own list, or one outcome that befell them all
    (a worker lost, a pack interrupted between runs)."""
    if PACK_KEY in outcome:
        return outcome[PACK_KEY]
    return [{**outcome, "name": name} for name in names]


def trainable_groups(started: dict[str, int], steps: dict[str, int]) -> list[tuple[list[str], bool]]:
    """The runs to train packed, as (names, resume), from the step each run stands at (``started``,
    0 for a fresh run) and the steps it trains to: groups of two or more that stand at one step,
    fresh runs together and runs cut off at the same step together. Finished runs, and a run
    alone at its step, are left to the unpacked path."""
    groups: dict[int, list[str]] = {}
    for name, step in started.items():
        if step < steps[name]:
            groups.setdefault(step, []).append(name)
    return [(names, step > 0) for step, names in groups.items() if len(names) > 1]
