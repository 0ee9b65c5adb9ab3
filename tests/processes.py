"""Driving a child process from a test: wait until it has reached a point worth interrupting."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


def wait_until(process: subprocess.Popen, reached: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll ``reached()`` until it is true; fail with the child's output if it exits first, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not reached():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{what} within {timeout:g} s"
        time.sleep(0.05)
