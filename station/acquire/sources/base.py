"""What every frame source is: a camera, a recording being replayed, or the live simulator.

The shape follows flirpy's ``camera/core.py``: ``open()``, ``read()``, ``close()`` and a context
manager, so the capture thread, the pairer and the tests treat every kind alike.
"""

from __future__ import annotations

import abc
from types import TracebackType

from station.types import Frame, Stream


class Source(abc.ABC):
    """A stream of frames from one camera kind.

    Subclasses set :attr:`stream` and :attr:`name` and implement the three methods. ``read()`` returns
    ``None`` when no frame could be had this time; :attr:`finished` then tells whether that is for good
    (a file or recording at its end) or a fault to retry (a camera that stopped answering).
    """

    stream: Stream
    name: str = "source"

    #: True once a finite source (file, recording) has delivered its last frame.
    finished: bool = False

    @abc.abstractmethod
    def open(self) -> None:
        """Acquire the device or file; raise :class:`station.errors.SourceError` with a one-line reason."""

    @abc.abstractmethod
    def read(self) -> Frame | None:
        """Block until the next frame and return it, or return ``None`` if there is none."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device or file. Safe to call twice, and on a source that never opened."""

    def describe(self) -> dict[str, object]:
        """What the station window and ``station doctor`` show about this source."""
        return {"name": self.name, "stream": self.stream}

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
