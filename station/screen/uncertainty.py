"""How sure a decision is: the expanded uncertainty (k=2) of a body temperature, from its parts.

A guard reading "37.9 °C" cannot tell a solid 37.9 from a reading that could as well be 38.4. The
Guide to the Expression of Uncertainty in Measurement (GUM) combines independent standard
uncertainties in quadrature and expands them by k=2 for ~95 % coverage; the parts here are

* the **readings' spread**: the standard error of the median of the readings decided on (never below
  the sensor's own noise over the same number of frames, since three readings can agree by chance);
* the **reference**: what the blackbody (or reference disc) leaves uncertain, its own accuracy and the
  residual of the drift correction; a station without one has no absolute scale at all and is never
  asked for this (it screens nobody: ``unreferenced``);
* the **spot-size correction** at the distance the readings were taken (``station.screen.measure``): the
  canthus hot spot is a few pixels across and the optics spread it, and how much depends on its unknown
  size and profile;
* the **skin-to-body model's residual**: how far oral temperature scatters around the model's estimate
  for people it never saw (its cross-validated error, which includes real physiological variation).

Pure functions: no camera, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: GUM coverage factor for ~95 % of a normal distribution.
K95 = 2.0
#: The standard deviation of a normal distribution is sqrt(pi/2) times its mean absolute deviation: how a
#: model's cross-validated MAE becomes a standard uncertainty.
SD_PER_MAE = math.sqrt(math.pi / 2.0)


def reading_spread_u(values: Sequence[float], noise_c: float) -> float:
    """Standard uncertainty (°C) of the median of ``values`` (one per frame), floored by sensor noise.

    The median of n readings has a standard error of about 1.25 sd / sqrt(n) (normal data); the floor uses
    the sensor's noise-equivalent temperature difference, since a few readings may agree by chance.
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n == 0:
        raise ValueError("reading_spread_u: expected at least one reading")
    sd = float(np.std(x, ddof=1)) if n > 1 else 0.0
    return 1.2533 * max(sd, float(noise_c)) / math.sqrt(n)


def combined_u95(*standard_u: float) -> float:
    """Expanded uncertainty (k=2) of independent standard uncertainties, rounded up to 0.01 °C."""
    for u in standard_u:
        if not (math.isfinite(u) and u >= 0):
            raise ValueError(f"combined_u95: expected finite standard uncertainties >= 0, got {standard_u}")
    u95 = K95 * math.sqrt(sum(u * u for u in standard_u))
    return math.ceil(u95 * 100.0 - 1e-9) / 100.0


def model_u(mae_c: float | None, default_c: float = 0.3) -> float:
    """Standard uncertainty of a skin-to-body model from its cross-validated MAE (``default_c`` without)."""
    if mae_c is None or not math.isfinite(mae_c) or mae_c <= 0:
        return default_c
    return SD_PER_MAE * float(mae_c)
