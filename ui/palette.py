"""Thermal palettes with fixed levels: a colour always means the same °C.

Auto-levelling (stretching each frame's own min..max) makes a warm room look like a fever and a fever
look ordinary when someone hot stands in front of a radiator. A screening display pins its levels, so
the guard learns what "yellow" means once. The palettes are built from a few documented colour stops
by linear interpolation in RGB, numpy only, so they can be tested without Qt.
"""

from __future__ import annotations

import numpy as np

from station.config import PALETTES as CONFIG_PALETTES

LEVELS_C = (20.0, 40.0)  # the display's fixed range: room to skin to fever

# Colour stops (position 0..1, RGB). "Iron" runs black, indigo, magenta-red, orange, yellow, white, the
# convention of thermography since the early FLIR cameras; "rainbow" is the blue-to-red spectrum.
PALETTE_STOPS: dict[str, tuple[tuple[float, tuple[int, int, int]], ...]] = {
    "iron": (
        (0.00, (0, 0, 0)),
        (0.18, (40, 0, 110)),
        (0.40, (160, 20, 130)),
        (0.60, (230, 80, 30)),
        (0.80, (255, 180, 0)),
        (0.93, (255, 240, 80)),
        (1.00, (255, 255, 255)),
    ),
    "grey": ((0.0, (0, 0, 0)), (1.0, (255, 255, 255))),
    "rainbow": (
        (0.00, (0, 0, 140)),
        (0.20, (0, 80, 255)),
        (0.40, (0, 220, 220)),
        (0.60, (60, 220, 0)),
        (0.80, (255, 200, 0)),
        (1.00, (220, 0, 0)),
    ),
}
PALETTES = tuple(PALETTE_STOPS)
assert PALETTES == CONFIG_PALETTES, "station/config.py names the palettes a config may choose"


def lut(name: str) -> np.ndarray:
    """The palette as a (256, 3) uint8 RGB table."""
    if name not in PALETTE_STOPS:
        raise ValueError(f"palette: expected one of {', '.join(PALETTES)}, got {name!r}")
    stops = PALETTE_STOPS[name]
    positions = np.array([p for p, _ in stops])
    colours = np.array([c for _, c in stops], dtype=np.float64)
    x = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(x, positions, colours[:, k]) for k in range(3)], axis=1)
    return np.rint(table).astype(np.uint8)


def to_index(celsius: np.ndarray, levels: tuple[float, float] = LEVELS_C) -> np.ndarray:
    """°C to palette indices 0..255 at the fixed levels (values outside clip to the ends)."""
    low, high = levels
    scaled = (np.asarray(celsius, dtype=np.float32) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def colourise(celsius: np.ndarray, name: str = "iron", levels: tuple[float, float] = LEVELS_C) -> np.ndarray:
    """(H, W) °C to an (H, W, 3) uint8 RGB image, C-contiguous (ready to wrap in a QImage)."""
    return np.ascontiguousarray(lut(name)[to_index(celsius, levels)])


def colour_bar(height: int, width: int = 24, name: str = "iron") -> np.ndarray:
    """A vertical bar, hottest at the top, (height, width, 3) RGB: the legend beside the thermal view."""
    column = lut(name)[np.linspace(255, 0, max(height, 2)).round().astype(np.int64)]
    return np.ascontiguousarray(np.repeat(column[:, None, :], width, axis=1))
