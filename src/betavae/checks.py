"""The checks of single values every part of betavae shares: seeds, weights, comma-separated lists.

A leaf (the standard library and :mod:`betavae.errors` only), so that the config, the
objectives, the sweeps and the command line all check a value the one way without importing
one another: an objective checking its weight must not need the config that names it.
"""

from __future__ import annotations

from betavae.errors import BetaVAEError

FLOAT32_MAX = 3.4028234663852886e38
"""``torch.finfo(torch.float32).max``: a larger learning rate or β is infinite in training."""

SEED_MAX = 2**32 - 1
"""The largest seed: scikit-learn's ``random_state`` (PCA's, in ``transfer``) refuses 2**32 and above.

numpy refuses negative seeds, torch takes up to 2**64 − 1 and TOML up to 2**63 − 1: the range
every generator a command seeds accepts is scikit-learn's.
"""


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` if every generator of a run takes it, else a one-line error calling it ``name``.

    The one check of seeds, for every command and library entry point that takes one: numpy's
    ``SeedSequence`` refuses negative seeds and scikit-learn's ``random_state`` 2**32 and
    above, each with a trace-back (:data:`SEED_MAX`).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise BetaVAEError(f"{name} must be a whole number from 0 to {SEED_MAX}, got {seed!r}")
    return seed


def check_weight(value: float, name: str, positive: bool = False) -> float:
    """``value`` if training can multiply by it, else a one-line error calling it ``name``.

    The one check of a β, an objective's weight or a learning rate: 0 or more (more than 0 when
    ``positive``) and finite in float32, the precision training computes in; NaN and ±∞ are
    refused here rather than diverging the run with advice about ``--lr``.
    """
    at_least = 0 < value if positive else 0 <= value  # False for NaN
    if isinstance(value, bool) or not (at_least and value <= FLOAT32_MAX):
        raise BetaVAEError(
            f"{name} must be a finite {'positive' if positive else 'non-negative'} number no larger than "
            f"3.4e38 (float32), got {value!r}"
        )
    return value


def comma_separated(text: str, flag: str) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]``: how every option that takes a list reads its value.

    ``train --eval``, ``evaluate --metrics``, ``transfer --labels`` and ``--baselines``,
    ``sweep --seeds``, ``--metrics`` and the swept values, and ``show traverse --dims`` all
    read here, so a list is written the same way everywhere: items separated by commas,
    spaces around them ignored. An empty item (``a,,b``, a trailing comma) is refused, naming
    ``flag``, rather than skipped: it is most likely a value left out.
    """
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise BetaVAEError(f"{flag} takes values separated by single commas, got {text!r}")
    return items
