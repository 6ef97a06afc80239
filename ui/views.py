"""The two live views: the visible frame with each face's verdict, and the thermal frame at fixed levels.

Each view keeps the latest image and what to draw on it, and paints on demand (the window's timer
calls :meth:`show`, Qt calls ``paintEvent``). Images are scaled with their aspect kept; overlays are
drawn in image coordinates through one transform, so boxes always sit on the faces.

While screening is paused (blackbody out of tolerance or not seen, calibration expired, a camera
lost) no temperature is drawn at all: a number that cannot be trusted must not reach a guard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QImage, QPainter, QPen, QTransform
from PyQt6.QtWidgets import QSizePolicy, QWidget

from station.types import LEVEL_COLOURS as STATION_LEVEL_COLOURS
from station.types import Level
from ui.palette import LEVELS_C, colour_bar, colourise

LEVEL_COLOURS = {
    **{level: QColor(hex_colour) for level, hex_colour in STATION_LEVEL_COLOURS.items()},
    "measuring": QColor("#eceff1"),
}


@dataclass(frozen=True)
class FaceMark:
    """One face to draw: its box (in the view's image pixels), its colour key and its label."""

    xyxy: tuple[float, float, float, float]
    level: str
    label: str


class ImageView(QWidget):
    """An RGB image scaled to fit, with face boxes and labels painted over it."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self._rgb: np.ndarray | None = None
        self._image: QImage | None = None
        self.marks: list[FaceMark] = []
        self.paused: str | None = None
        self.label_font = QFont("Sans", 22, QFont.Weight.Bold)

    def set_image(self, rgb: np.ndarray) -> None:
        self._rgb = np.ascontiguousarray(rgb)  # QImage borrows this buffer: keep it alive
        h, w = self._rgb.shape[:2]
        self._image = QImage(self._rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)

    def show(self, rgb: np.ndarray, marks: list[FaceMark], paused: str | None) -> None:  # type: ignore[override]
        self.set_image(rgb)
        self.marks, self.paused = marks, paused
        self.update()

    def image_transform(self) -> tuple[QTransform, QRectF]:
        """Image pixels -> widget pixels, aspect kept and centred; and the target rectangle."""
        if self._image is None:
            return QTransform(), QRectF()
        w, h = self._image.width(), self._image.height()
        scale = min(self.width() / w, self.height() / h)
        x0, y0 = (self.width() - w * scale) / 2, (self.height() - h * scale) / 2
        return QTransform(scale, 0, 0, scale, x0, y0), QRectF(x0, y0, w * scale, h * scale)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#101418"))
        if self._image is None:
            painter.setPen(QColor("#b0bec5"))
            painter.setFont(self.label_font)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, f"{self.title}: waiting for frames")
            return
        transform, target = self.image_transform()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, self._image)
        self.paint_extras(painter, transform, target)
        for mark in self.marks:
            self._paint_mark(painter, transform, mark)
        if self.paused:
            self._paint_paused(painter, target)

    def paint_extras(self, painter: QPainter, transform: QTransform, target: QRectF) -> None:
        """Hook for what a view draws between the image and the faces."""

    def _paint_mark(self, painter: QPainter, transform: QTransform, mark: FaceMark) -> None:
        colour = LEVEL_COLOURS.get(mark.level, LEVEL_COLOURS["measuring"])
        rect = transform.mapRect(QRectF(mark.xyxy[0], mark.xyxy[1], mark.xyxy[2] - mark.xyxy[0],
                                        mark.xyxy[3] - mark.xyxy[1]))
        painter.setPen(QPen(colour, 4))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(rect)
        if not mark.label:
            return
        painter.setFont(self.label_font)
        metrics = painter.fontMetrics()
        text_w, text_h = metrics.horizontalAdvance(mark.label) + 16, metrics.height() + 6
        top = rect.top() - text_h if rect.top() - text_h >= 0 else rect.bottom()
        box = QRectF(rect.left(), top, text_w, text_h)
        painter.fillRect(box, colour)
        painter.setPen(QColor("#000000") if mark.level in ("measuring", Level.ELEVATED) else QColor("#ffffff"))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, mark.label)

    def _paint_paused(self, painter: QPainter, target: QRectF) -> None:
        painter.fillRect(target, QColor(0, 0, 0, 150))
        painter.setPen(QColor("#ffca28"))
        painter.setFont(QFont("Sans", 26, QFont.Weight.Bold))
        painter.drawText(target, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                         f"SCREENING PAUSED\n{self.paused}")


class ThermalView(ImageView):
    """The thermal frame in a fixed-level palette, with its colour bar, the blackbody ROI and an isotherm
    of the pixels at or above the alarm level."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("thermal", parent)
        self.palette_name = "iron"
        self.levels = LEVELS_C
        self.isotherm_c: float | None = None
        self.blackbody_roi: tuple[int, int, int, int] | None = None
        self.blackbody_text = ""
        self._bar = colour_bar(256, 20, self.palette_name)

    def set_palette(self, name: str) -> None:
        self.palette_name = name
        self._bar = colour_bar(256, 20, name)
        self.update()

    def show_celsius(self, celsius: np.ndarray, marks: list[FaceMark], paused: str | None) -> None:
        rgb = colourise(celsius, self.palette_name, self.levels)
        if self.isotherm_c is not None and not paused:
            rgb[celsius >= self.isotherm_c] = (0, 255, 255)  # cyan: a colour no palette level uses
        self.show(rgb, marks, paused)

    def paint_extras(self, painter: QPainter, transform: QTransform, target: QRectF) -> None:
        if self.blackbody_roi is not None:
            x1, y1, x2, y2 = self.blackbody_roi
            rect = transform.mapRect(QRectF(x1, y1, x2 - x1, y2 - y1))
            painter.setPen(QPen(QColor("#40c4ff"), 3, Qt.PenStyle.DashLine))
            painter.drawRect(rect)
            painter.setFont(QFont("Sans", 14, QFont.Weight.Bold))
            painter.drawText(QRectF(target.right() - 260, rect.bottom() + 4, 250, 26),
                             Qt.AlignmentFlag.AlignRight, self.blackbody_text)
        self._paint_colour_bar(painter, target)

    def _paint_colour_bar(self, painter: QPainter, target: QRectF) -> None:
        height = max(int(target.height() * 0.8), 60)
        bar = QImage(self._bar.data, self._bar.shape[1], self._bar.shape[0], 3 * self._bar.shape[1],
                     QImage.Format.Format_RGB888)
        left, top = target.left() + 12, target.top() + (target.height() - height) / 2  # left: the blackbody is right
        painter.fillRect(QRectF(left - 6, top - 20, 92, height + 40), QColor(0, 0, 0, 140))
        painter.drawImage(QRectF(left, top, 20, height), bar)
        painter.setPen(QColor("#ffffff"))
        painter.setFont(QFont("Sans", 13, QFont.Weight.Bold))
        low, high = self.levels
        for value in np.arange(low, high + 0.1, 5.0):
            y = top + height * (1 - (value - low) / (high - low))
            painter.drawText(QRectF(left + 24, y - 10, 60, 20), Qt.AlignmentFlag.AlignVCenter, f"{value:.0f} °C")
