"""Random streams named, not numbered: one per metric, per baseline's fitting, per repeat.

Seeding a generator with ``[seed, place in a list]`` ties its numbers to the list's order
(inserting an entry changes every later one's) and lets two unrelated uses share a stream
(a baseline's fitting images and a metric's points drawn from the same generator). A
stream called by its name under a seed has neither problem.
"""

from __future__ import annotations

import zlib

import numpy as np


def named_generator(seed: int, name: str) -> np.random.Generator:
    """The generator of the stream called ``name`` under ``seed``.

    The name enters through its CRC-32, which is the same in every process and Python
    version (unlike ``hash``).
    """
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
