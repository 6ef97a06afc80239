"""Thermal sensor models: what a Lepton-like or Boson-like camera would output for a scene.

The scene is rendered in *signal* space (proportional to in-band radiance), not in temperature: pixels
integrate radiance, optics blur radiance, and a surface of emissivity below one mixes its own radiance
with reflected surroundings. Only after that does each model turn signal into its output: the Lepton
into TLinear centikelvin (the camera's own radiometric conversion, emissivity 1), the Boson into raw
counts that the station converts through the Planck constants (T = B / ln(R / (S - O) + F) - 273.15).
Between the two, the sensor adds its flaws in temperature terms: a static gain/offset error (what the
profile's radiometry corrects), a slow drift of up to about a degree over minutes (what the blackbody
corrects) and temporal noise at the camera's NETD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

KELVIN = 273.15


@dataclass(frozen=True)
class Planck:
    """In-band signal of a blackbody: ``S(T) = R / (exp(B / T) - F)`` counts, plus an offset O in raw output."""

    R: float
    B: float
    F: float
    O: float  # noqa: E741 - FLIR's own name for the constant

    def signal(self, celsius: np.ndarray | float) -> np.ndarray:
        return self.R / (np.exp(self.B / (np.asarray(celsius, dtype=np.float64) + KELVIN)) - self.F)

    def celsius(self, signal: np.ndarray | float) -> np.ndarray:
        return self.B / np.log(self.R / np.asarray(signal, dtype=np.float64) + self.F) - KELVIN

    def as_dict(self) -> dict[str, float]:
        return {"R": self.R, "B": self.B, "F": self.F, "O": self.O}


@dataclass(frozen=True)
class ThermalSensorModel:
    name: str
    width: int
    height: int
    fps: float
    hfov_deg: float
    encoding: str  # "tlinear-centikelvin" | "raw-counts"
    planck: Planck
    netd_c: float = 0.05
    blur_sigma_px: float = 0.6
    # Where the thermal camera sits relative to the visible one (metres) and how it is misaligned.
    baseline_m: tuple[float, float, float] = (0.045, 0.012, 0.0)
    misalignment_deg: tuple[float, float, float] = (0.6, -0.4, 0.3)  # yaw, pitch, roll

    def focal_px(self) -> float:
        return (self.width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)

    def encode(self, measured_c: np.ndarray) -> np.ndarray:
        """The camera's uint16 output for per-pixel measured temperatures (flaws already applied)."""
        if self.encoding == "tlinear-centikelvin":
            out = np.rint((measured_c + KELVIN) * 100.0)
        else:
            out = np.rint(self.planck.signal(measured_c) + self.planck.O)
        return np.clip(out, 0, 65535).astype(np.uint16)


# Lepton 3.5: 160x120, 57° HFOV, 8.7 Hz, TLinear output. Its internal Planck curve only shapes how
# radiances mix (emissivity, blur); the constants are of the order FLIR publishes for the Lepton.
LEPTON = ThermalSensorModel(
    name="lepton3.5",
    width=160,
    height=120,
    fps=8.7,
    hfov_deg=57.0,
    encoding="tlinear-centikelvin",
    planck=Planck(R=366545.0, B=1428.0, F=1.0, O=-342.0),
    blur_sigma_px=0.55,
)

# Boson 320: 320x256, 50° HFOV, 30 Hz, raw 16-bit counts with Planck constants in the recording's meta.
BOSON = ThermalSensorModel(
    name="boson320",
    width=320,
    height=256,
    fps=30.0,
    hfov_deg=50.0,
    encoding="raw-counts",
    planck=Planck(R=1682468.0, B=1501.0, F=1.0, O=-5000.0),
    blur_sigma_px=0.7,
)

SENSORS = {"lepton": LEPTON, "boson": BOSON}


@dataclass(frozen=True)
class SensorFlaws:
    """The errors one simulated camera has: ``measured = gain * true + offset + drift(t) + noise``."""

    gain: float = 1.0
    offset_c: float = 0.0
    drift_c: float = 0.8  # amplitude; the drift stays within ±drift_c
    drift_phases: tuple[float, float] = (0.0, 0.0)

    def drift(self, t: float) -> float:
        """A slow wander made of two incommensurate periods (about 3 min and 53 s)."""
        a, b = self.drift_phases
        slow, faster = math.sin(2 * math.pi * t / 180.0 + a), math.sin(2 * math.pi * t / 53.0 + b)
        return self.drift_c * (0.55 * slow + 0.45 * faster)

    def apply(self, apparent_c: np.ndarray, t: float, netd_c: float, rng: np.random.Generator) -> np.ndarray:
        noise = rng.normal(0.0, netd_c, size=apparent_c.shape)
        return self.gain * apparent_c + self.offset_c + self.drift(t) + noise
