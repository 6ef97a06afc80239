"""The simulator as a live camera: frames rendered on demand, paced like a real sensor.

Two sources (visible and thermal) share one :class:`~station.sim.simulator.Simulation`, just as two
cameras share one scene, so ``station run --visible sim --thermal sim`` exercises the capture threads,
pairing and pipeline exactly as hardware would, with ground truth available.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache

from station.acquire.sources.base import Source
from station.acquire.sources.pacing import Pacer
from station.errors import SourceError
from station.sim.simulator import Simulation, SimulationConfig
from station.types import STREAMS, Frame, Stream


@lru_cache(maxsize=4)
def shared_simulation(seed: int, thermal_camera: str = "lepton") -> Simulation:
    """One scene per seed, so the visible and thermal sources built from one spec see the same people."""
    return Simulation(SimulationConfig(seed=seed, thermal_camera=thermal_camera)).prepare()


class SimulatedSource(Source):
    """One camera of a simulated scene.

    Parameters
    ----------
    simulation
        The scene; share it between the visible and the thermal source.
    stream
        Which of its two cameras this source is.
    realtime
        Release frame k at its time (as a camera would) or as fast as it renders.
    loop
        Start the visitors over at the end; ``t`` and ``index`` keep increasing across passes.
    """

    name = "simulated"

    def __init__(
        self,
        simulation: Simulation,
        stream: Stream,
        *,
        realtime: bool = True,
        loop: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if stream not in STREAMS:
            raise ValueError(f"stream: expected one of {', '.join(STREAMS)}, got {stream!r}")
        self.simulation = simulation
        self.stream = stream
        self.realtime = realtime
        self.loop = loop
        self._pacer = Pacer(clock=clock, sleep=sleep)
        self._index = 0
        self._pass = 0
        self._opened = False

    def open(self) -> None:
        self.simulation.prepare()
        self._index = 0
        self._pass = 0
        self._pacer.reset()
        self.finished = False
        self._opened = True

    def read(self) -> Frame | None:
        if self.finished or not self._opened:
            return None
        count = self._count()
        if self._index >= count:
            if not self.loop:
                self.finished = True
                return None
            self._pass += 1
            self._index = 0
        frame = self.simulation.render(self.stream, self._index)
        self._index += 1
        if self._pass:
            frame = Frame(frame.image, frame.t + self._pass * self.simulation.duration_s,
                          frame.index + self._pass * count, frame.meta)
        if self.realtime:
            self._pacer.wait_until(frame.t)
        return frame

    def close(self) -> None:
        self._opened = False

    def _count(self) -> int:
        times = self.simulation.visible_times if self.stream == "visible" else self.simulation.thermal_times
        return len(times)

    def describe(self) -> dict[str, object]:
        cfg = self.simulation.config
        info = {**super().describe(), "seed": cfg.seed, "sensor": self.simulation.sensor.name,
                "frames": self._count()}
        if self.stream == "thermal":  # how its pixels encode temperature, as a real camera's adapter says
            sensor = self.simulation.sensor
            info["encoding"] = sensor.encoding
            if sensor.encoding == "raw-counts":
                info["planck"] = sensor.planck.as_dict()
        return info


def open_simulated(arg: str | None, stream: Stream) -> SimulatedSource:
    """The ``sim`` source kind (``station.acquire.sources.registry``): ``sim``, ``sim:SEED`` or
    ``sim:SEED:boson``, one scene per seed for both streams, looping."""
    seed_text, _, camera = (arg or "0").partition(":")
    if not seed_text.lstrip("-").isdigit() or camera not in ("", "lepton", "boson"):
        raise SourceError(f"source 'sim:{arg}': expected sim, sim:SEED or sim:SEED:lepton|boson")
    return SimulatedSource(shared_simulation(int(seed_text), camera or "lepton"), stream, loop=True)
