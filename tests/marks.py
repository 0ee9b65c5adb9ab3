"""Marks that fixtures carry, so that what a fixture costs decides where its tests run.

A fixture that trains a model, sweeps, or starts Ray or a browser is decorated with
:func:`slow_fixture` below ``@pytest.fixture``: every test that uses it, directly or through
another fixture, is marked ``slow`` and left out of ``make test-fast``. The mark belongs to the
fixture itself, not to its name: two fixtures of one name in two files (the report's hand-made
``study`` and the smoke study) are marked each by what it does.

A fixture holding one costly resource that a test run starts once (Chromium, a Ray instance)
names it with :func:`shared_resource`: under ``pytest -n`` (``make test``) the files of its tests
run in one worker process (``SHARED_RESOURCE_FILES`` in tests/conftest.py, which checks it), so the
run starts it once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Function = TypeVar("Function", bound=Callable[..., object])

SLOW = "_betavae_slow"
RESOURCE = "_betavae_resource"


def slow_fixture(function: Function) -> Function:
    """Mark ``function`` (a fixture, decorated before ``@pytest.fixture``) as slow to set up."""
    setattr(function, SLOW, True)
    return function


def shared_resource(name: str) -> Callable[[Function], Function]:
    """Mark a fixture as holding the test run's one ``name`` (``"chromium"``, ``"ray"``); slow too."""
    def mark(function: Function) -> Function:
        setattr(function, RESOURCE, name)
        return slow_fixture(function)
    return mark
