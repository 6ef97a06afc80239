"""The alarm banner: full width, flashing, impossible to miss, and latched until a guard acknowledges.

Alarms queue in the order people stood at the station; the banner always shows the oldest one (the
person most likely to be walking away) with its temperature and a snapshot of the face, and how many
more are waiting. Nothing but an acknowledgement removes an alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QFont, QImage, QPixmap
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from station.types import LEVEL_COLOURS, Level

FLASH_MS = 250  # 2 Hz: fast enough to catch the eye, below the 3 Hz photosensitivity limit
#: Per alarm level: the strong colour (the shared level colour) and the pale one the banner flashes with.
COLOURS = {Level.FEVER: (LEVEL_COLOURS[Level.FEVER], "#ffffff"),
           Level.ELEVATED: (LEVEL_COLOURS[Level.ELEVATED], "#ffe0b2")}


@dataclass
class PendingAlarm:
    """An alarm waiting for a guard. ``screening_id`` is its row in the event store (None if unlogged)."""

    screening_id: int | None
    track_id: int
    level: str
    body_c: float | None
    skin_c: float | None
    t: float
    snapshot_bgr: np.ndarray | None = None
    emitted_at: float | None = None  # perf_counter when the engine sent it; shown_at when the banner did
    shown_at: float | None = None
    u95_c: float | None = None  # the body temperature's expanded uncertainty (k=2)
    uncertain: bool = False  # the interval reaches the fever threshold: re-measure before deciding

    def headline(self) -> str:
        temp = "" if self.body_c is None else f" {temperature_text(self.body_c, self.u95_c)}"
        ask = "re-measure this person" if self.uncertain else "check this person"
        return f"{self.level.upper()}{temp} — {ask}"


def temperature_text(body_c: float, u95_c: float | None = None) -> str:
    """A body temperature as a guard reads it, with its 95 % interval when known: ``37.9 ± 0.6 °C``.

    The interval is rounded up to the tenth shown, so it never looks tighter than it is.
    """
    if u95_c is None:
        return f"{body_c:.1f} °C"
    return f"{body_c:.1f} ± {math.ceil(u95_c * 10.0 - 1e-9) / 10.0:.1f} °C"


def bgr_pixmap(image: np.ndarray, height: int) -> QPixmap:
    """A BGR uint8 image as a pixmap of the given height (the array is copied: Qt keeps no reference)."""
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    h, w = rgb.shape[:2]
    qimage = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(qimage).scaledToHeight(height, Qt.TransformationMode.SmoothTransformation)


class AlarmBanner(QWidget):
    """Hidden while nothing waits; otherwise the oldest alarm, flashing, with an Acknowledge button."""

    acknowledge_requested = pyqtSignal(object)  # PendingAlarm

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._queue: list[PendingAlarm] = []
        self._bright = True
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)  # let the style sheet paint it
        self.snapshot = QLabel()
        self.snapshot.setFixedSize(120, 120)
        self.snapshot.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text = QLabel()
        self.text.setFont(QFont("Sans", 32, QFont.Weight.Bold))
        self.text.setWordWrap(True)  # never let the headline widen the window past the screen
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.more = QLabel()
        self.more.setFont(QFont("Sans", 18, QFont.Weight.Bold))
        self.button = QPushButton("Acknowledge (F2)")
        self.button.setFont(QFont("Sans", 20, QFont.Weight.Bold))
        self.button.setMinimumHeight(80)
        self.button.clicked.connect(self.request_acknowledge)
        words = QVBoxLayout()
        words.addWidget(self.text)
        words.addWidget(self.more)
        row = QHBoxLayout(self)
        row.addWidget(self.snapshot)
        row.addLayout(words, 1)
        row.addWidget(self.button)
        self._flash = QTimer(self)
        self._flash.setInterval(FLASH_MS)
        self._flash.timeout.connect(self._toggle)
        self.hide()

    def pending(self) -> list[PendingAlarm]:
        return list(self._queue)

    def current(self) -> PendingAlarm | None:
        return self._queue[0] if self._queue else None

    def push(self, alarm: PendingAlarm) -> None:
        self._queue.append(alarm)
        self._refresh()

    def resolve(self, alarm: PendingAlarm) -> None:
        self._queue = [a for a in self._queue if a is not alarm]
        self._refresh()

    def request_acknowledge(self) -> None:
        if self._queue:
            self.acknowledge_requested.emit(self._queue[0])

    def _refresh(self) -> None:
        alarm = self.current()
        if alarm is None:
            self._flash.stop()
            self.hide()
            return
        self.text.setText(alarm.headline())
        waiting = len(self._queue) - 1
        self.more.setText(f"+{waiting} more waiting" if waiting else "")
        if alarm.snapshot_bgr is not None and alarm.snapshot_bgr.size:
            self.snapshot.setPixmap(bgr_pixmap(alarm.snapshot_bgr, 116))
        else:
            self.snapshot.clear()
        self._bright = True
        self._paint()
        self.show()
        if not self._flash.isActive():
            self._flash.start()

    def _toggle(self) -> None:
        self._bright = not self._bright
        self._paint()

    def _paint(self) -> None:
        alarm = self.current()
        if alarm is None:
            return
        strong, pale = COLOURS.get(alarm.level, COLOURS[Level.FEVER])
        background, foreground = (strong, "#ffffff") if self._bright else (pale, strong)
        self.setStyleSheet(f"AlarmBanner {{ background: {background}; }} QLabel {{ color: {foreground}; }}")
