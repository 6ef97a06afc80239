"""Thermal sensor models: what a Lepton-like, Boson-like or A35-like camera would output for a scene.

The scene is rendered in *signal* space (proportional to in-band radiance), not in temperature: pixels
integrate radiance, optics blur radiance, and a surface of emissivity below one mixes its own radiance
with reflected surroundings. Each model carries its lens and detector (:class:`~station.sim.optics.Optics`:
pitch, focal length, f-number, fill factor, focus), from which the simulator builds the camera's
point-spread function. After the optics each model turns signal into its output: the Lepton into
TLinear centikelvin (the camera's own radiometric conversion, emissivity 1), the Boson and the A35-class
camera into raw counts that the station converts through the Planck constants
(T = B / ln(R / (S - O) + F) - 273.15). Between the two, the sensor adds its flaws in temperature terms:
a static gain/offset error (what the profile's radiometry corrects), a slow drift of up to about a
degree over minutes (what the blackbody corrects) and temporal noise at the camera's NETD.

Where the numbers come from (datasheet-class values; the rest are marked as assumptions):

- **Lepton 3.5**: 160x120, 12 µm pixels, 57° HFOV, f/1.1 silicon doublet, 8-14 µm, NETD < 50 mK,
  < 9 Hz (FLIR Lepton engineering datasheet, 500-0659-00-09). Focal length 1.77 mm from the HFOV and
  pitch.
- **Boson 320**: 320x256, 12 µm pixels, NETD as low as < 40 mK at f/1.0 (FLIR Boson datasheet,
  102-2013-40); the 50° lens (4.1 mm from the HFOV and pitch) taken as f/1.0, the fast end of the
  f/1.0-1.3 its lenses span (assumption). Other lenses: ``SimulationConfig.thermal_hfov_deg``.
- **A35-class** (``a35``): 320x256, 25 µm pixels, 9 mm f/1.25 lens, 48° HFOV, radiometric raw 14-bit
  counts with Planck constants: the FLIR A35's configuration as its datasheet gives it, quoted from
  memory (its 7.5-13 µm band is modelled as 8-14); 30 Hz here (the camera runs at up to 60 Hz); its
  Planck constants are of the order such cameras report (assumption).
- **All**: pixel fill factor 0.8 and residual lens aberrations of 3 µm RMS (assumptions: neither is
  published); focused at 1.0 m, where an installer sets the measuring mark (assumption).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from station.sim.optics import Optics

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
    pitch_um: float = 12.0
    f_number: float = 1.1
    fill_factor: float = 0.8  # assumption: microbolometer pixels, typical; not published
    aberration_um: float = 3.0  # assumption: residual aberrations of a fast lens, RMS radius
    focus_m: float = 1.0  # assumption: focused at the measuring mark
    oversample: int = 5  # fine samples per pixel and axis for the optics (odd)
    # Where the thermal camera sits relative to the visible one (metres) and how it is misaligned.
    baseline_m: tuple[float, float, float] = (0.045, 0.012, 0.0)
    misalignment_deg: tuple[float, float, float] = (0.6, -0.4, 0.3)  # yaw, pitch, roll

    def focal_px(self) -> float:
        return (self.width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)

    @property
    def optics(self) -> Optics:
        """The lens and detector: the focal length follows from the field of view and the pitch, so another
        lens (a narrower field of view) is another focal length at the same f-number."""
        return Optics(pitch_um=self.pitch_um, focal_mm=self.focal_px() * self.pitch_um / 1000.0,
                      f_number=self.f_number, fill_factor=self.fill_factor, aberration_um=self.aberration_um,
                      focus_m=self.focus_m, oversample=self.oversample)

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
    pitch_um=12.0,
    f_number=1.1,
)

# Boson 320: 320x256, 50° HFOV (a 4.1 mm lens), 30 Hz, raw 16-bit counts with Planck constants in the
# recording's meta.
BOSON = ThermalSensorModel(
    name="boson320",
    width=320,
    height=256,
    fps=30.0,
    hfov_deg=50.0,
    encoding="raw-counts",
    planck=Planck(R=1682468.0, B=1501.0, F=1.0, O=-5000.0),
    pitch_um=12.0,
    f_number=1.0,
)

# A35-class: 320x256 at a 25 µm pitch behind a 9 mm f/1.25 lens (48° HFOV), raw counts with Planck
# constants. Bigger pixels and a longer focal length than the Boson's: a blur disc 3.8 times the Boson's
# at the same distance (1.8 times in pixels), 1.7 pixels across at 0.6 m for a lens focused at 1 m.
A35 = ThermalSensorModel(
    name="a35-class",
    width=320,
    height=256,
    fps=30.0,
    hfov_deg=48.0,
    encoding="raw-counts",
    planck=Planck(R=826000.0, B=1396.0, F=1.0, O=-1000.0),
    pitch_um=25.0,
    f_number=1.25,
)

SENSORS = {"lepton": LEPTON, "boson": BOSON, "a35": A35}


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
