"""SIGINT and SIGTERM end a long-running command as its input ending would, never mid-write.

Python's default for SIGTERM (what systemd and ``docker stop`` send) is to die on the spot, and for
SIGINT to raise KeyboardInterrupt wherever the program happens to be, possibly between a row written and
the note that it was. Both commands that run until stopped (``station run``, ``station record``) instead
note the signal and finish their loop at the next frame, closing what they wrote.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(on_stop: Callable[[], None] = lambda: None) -> Iterator[list[int]]:
    """Within the block, the first SIGINT or SIGTERM is appended to the yielded list and calls ``on_stop``.

    The handler runs on the main thread, which may at that moment hold a lock, so ``on_stop`` must take
    none itself (hand work to a new thread). A second signal raises KeyboardInterrupt, for an operator who
    will not wait. Outside the main thread (a test driving a command from a worker) signals cannot be
    handled, and nothing changes.
    """
    asked: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield asked
        return

    def handler(signum: int, frame: object) -> None:
        if asked:
            raise KeyboardInterrupt
        asked.append(signum)
        on_stop()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield asked
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
