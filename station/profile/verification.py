"""The blackbody verification a technician runs (``station calibrate verify``), as the log keeps it.

``verify`` logs one system event per check; the window's status bar and ``calibrate show`` read the
newest back, so a guard sees at a glance whether the station was last found in tolerance, and when.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

VERIFIED = "calibration_verified"
VERIFY_FAILED = "calibration_verify_failed"
KINDS = (VERIFIED, VERIFY_FAILED)


def summary(row: Mapping[str, Any] | None) -> str:
    """One line for a logged verification row (``kind``, ``wall_time``, ``detail``): pass or fail, error, when."""
    if row is None:
        return "never verified"
    verdict = "verified" if row["kind"] == VERIFIED else "verify FAILED"
    try:
        detail = json.loads(row.get("detail") or "{}")
        error = f" {float(detail['error_c']):+.2f} °C"
    except (ValueError, KeyError, TypeError):
        error = ""
    when = str(row.get("wall_time", ""))[:16].replace("T", " ")
    return f"{verdict}{error} ({when})"
