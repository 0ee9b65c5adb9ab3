"""Turn Ctrl-C and SIGTERM into a request the training loop answers at a step boundary.

Stopping in the middle of an optimiser step would leave weights and optimiser state out
of step with each other; instead the first signal sets a flag, the loop saves a
checkpoint after the step in flight and exits cleanly. A second signal stops at once.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """A context manager whose ``signal`` is the number of the first stop signal, or None."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self) -> StopRequest:
        # Handlers can only be installed from the main thread; elsewhere (a worker thread
        # of a sweep) the caller owns signal handling.
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
