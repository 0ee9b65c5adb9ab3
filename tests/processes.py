"""Driving a child process from a test: wait until it has reached a point worth interrupting,
or have it hold a run folder's lock as a training in another terminal would."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# The context manager is kept in a name: collected, it would close its generator and release the lock.
HOLD = ("from betavae.runs import RunDir; import sys, time; "
        "held = RunDir(sys.argv[1]).lock('betavae train'); held.__enter__(); "
        "print('locked', flush=True); time.sleep(120)")


def wait_until(
    process: subprocess.Popen, reached: Callable[[], bool], what: str, timeout: float = 120
) -> None:
    """Poll ``reached()`` until it is true; fail with the child's output if it exits first, or
    after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not reached():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{what} within {timeout:g} s"
        time.sleep(0.05)


@contextmanager
def locked_by_another_process(folder: Path) -> Iterator[int]:
    """Hold ``folder``'s lock in a child process for the ``with`` block; yields the child's pid.

    The child is killed with SIGKILL at the end: the kernel, not the child, releases the lock.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = child.stdout.readline()  # blocks until the lock is held, or the child dies
        assert line.strip() == "locked", child.communicate()
        yield child.pid
    finally:
        child.kill()
        child.wait()
