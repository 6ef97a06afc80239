"""From what the operator typed (``--thermal lepton:1``) to a source, and what ``station cameras`` finds.

Every source kind with a name is one entry of :data:`SOURCE_KINDS`, so adding a kind (a recording, the
simulator) is one line, and the error for a typo lists the kinds that exist, generated from the same
table so it cannot fall out of date. Visible cameras also take the forms OpenCV understands directly:
a device index, a URL, a video file.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flirpy.camera.boson import Boson
from flirpy.camera.lepton import Lepton

from station.acquire.sources.base import Source
from station.acquire.sources.boson import BosonSource
from station.acquire.sources.devices import list_video_devices
from station.acquire.sources.lepton import LeptonSource
from station.acquire.sources.opencv_visible import OpenCVVisibleSource, target_kind
from station.acquire.sources.uvc_y16 import UVCY16Source
from station.errors import SourceError
from station.types import Stream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceKind:
    """A named source kind.

    Attributes
    ----------
    streams
        Which of ``--visible`` / ``--thermal`` it may be given to.
    forms
        How it is written, for error messages (``"lepton"``, ``"lepton:N"``).
    make
        Builds the (unopened) source from the text after the first colon (``None`` without one) and the
        stream asked for; raises :class:`SourceError` for a bad argument.
    """

    streams: tuple[Stream, ...]
    forms: tuple[str, ...]
    make: Callable[[str | None, Stream], Source]


def _device(kind: str, arg: str | None, *, required: bool = False) -> int | None:
    if arg is None and not required:
        return None
    if arg is None or not arg.isdigit():
        got = "nothing" if arg is None else repr(arg)
        raise SourceError(f"source '{kind}:N': expected a device index N after '{kind}:', got {got}")
    return int(arg)


def _lepton(arg: str | None, stream: Stream) -> Source:
    return LeptonSource(_device("lepton", arg))


def _boson(arg: str | None, stream: Stream) -> Source:
    return BosonSource(_device("boson", arg))


def _uvc(arg: str | None, stream: Stream) -> Source:
    return UVCY16Source(_device("uvc", arg, required=True))


def _sim(arg: str | None, stream: Stream) -> Source:
    """``sim``, ``sim:SEED`` or ``sim:SEED:boson``: the live simulator, a plug-in named by its module.

    The simulator sits above acquire (it writes recordings with acquire's writer), so acquire never
    imports it; the kind is loaded by name when an operator asks for it, as an entry point would be.
    """
    return importlib.import_module(SIMULATOR_PLUGIN).open_simulated(arg, stream)


#: The module that provides the ``sim`` kind (``open_simulated(arg, stream)``).
SIMULATOR_PLUGIN = "station.sim.live"


#: The named kinds, keyed by the word before the colon. Add a kind here and it is parsed and listed.
SOURCE_KINDS: dict[str, SourceKind] = {
    "lepton": SourceKind(("thermal",), ("lepton", "lepton:N"), _lepton),
    "boson": SourceKind(("thermal",), ("boson", "boson:N"), _boson),
    "uvc": SourceKind(("thermal",), ("uvc:N",), _uvc),
    "sim": SourceKind(("visible", "thermal"), ("sim", "sim:SEED", "sim:SEED:boson"), _sim),
}

_VISIBLE_FORMS = ("a device index", "a URL such as rtsp://host/stream", "an existing video file")


def open_source(spec: str, stream: Stream) -> Source:
    """Build the source ``spec`` names for ``stream``, without opening it.

    Parameters
    ----------
    spec
        A device index, a named kind (:data:`SOURCE_KINDS`), or for visible sources a URL or file path.
    stream
        ``"visible"`` or ``"thermal"``: which option the spec was given to.

    Raises
    ------
    SourceError
        One line naming the spec and the forms that exist for this stream.
    """
    if stream not in ("visible", "thermal"):
        raise ValueError(f"stream: expected 'visible' or 'thermal', got {stream!r}")
    text = spec.strip()
    if text.isdigit():
        return OpenCVVisibleSource(int(text)) if stream == "visible" else UVCY16Source(int(text))
    word, colon, arg = text.partition(":")
    kind = SOURCE_KINDS.get(word.lower())
    if kind is not None and not arg.startswith("//"):
        if stream not in kind.streams:
            raise SourceError(f"'{spec}' is a {' or '.join(kind.streams)} source, not a {stream} one")
        return kind.make(arg if colon else None, stream)
    if stream == "visible" and text:
        if target_kind(text) == "url" or Path(text).is_file():
            return OpenCVVisibleSource(text)
    raise SourceError(f"unknown {stream} source '{spec}': expected {_choices(stream)}")


def _choices(stream: Stream) -> str:
    forms = [form for kind in SOURCE_KINDS.values() if stream in kind.streams for form in kind.forms]
    parts = [*_VISIBLE_FORMS, *forms] if stream == "visible" else [*forms, "a device index"]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def discover_cameras() -> list[dict[str, object]]:
    """What is connected, for ``station cameras``: Leptons, Bosons and other video devices.

    flirpy finds its cameras by USB ids; every other V4L2 capture node is listed with its driver's name,
    each with the ``spec`` to pass to ``--visible``/``--thermal``. On a machine without cameras (or
    without V4L2 at all) this returns ``[]`` quickly and prints nothing: flirpy's warnings and the
    failures of its platform tools are swallowed, since "nothing found" is the answer either way.
    """
    found: list[dict[str, object]] = []
    flirpy_devices: set[int] = set()
    for kind, model, finder in _flirpy_finders():
        device = _quietly(finder.find_video_device)
        if not isinstance(device, int):
            continue
        flirpy_devices.add(device)
        camera: dict[str, object] = {"kind": kind, "stream": "thermal", "device": device, "name": model}
        if kind == "boson":
            camera["control_port"] = _quietly(finder.find_serial_device)
        found.append({**camera, "spec": f"{kind}:{device}"})
    for node in list_video_devices():
        if node["device"] in flirpy_devices:
            continue
        found.append({"kind": "v4l2", "stream": "unknown", **node, "spec": str(node["device"])})
    return found


def _flirpy_finders() -> list[tuple[str, str, type]]:
    return [("lepton", "FLIR Lepton (PureThermal)", Lepton), ("boson", "FLIR Boson", Boson)]


def _quietly(finder: Callable[[], object]) -> object:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return finder()
    except Exception as exc:  # udev, system_profiler or find_cameras.exe missing or failing
        log.debug("flirpy's camera search failed: %s: %s", type(exc).__name__, exc)
        return None
