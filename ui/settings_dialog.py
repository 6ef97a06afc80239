"""Settings behind the technician PIN: thresholds, alarm mode, volume, palette, guidance strings.

A guard can open the dialog but sees nothing editable until the PIN is given; the first time (no PIN
yet) the technician sets one. The result is a new :class:`ui.config.StationConfig`, which the window
saves and applies.
"""

from __future__ import annotations

import dataclasses

from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSlider,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from station.config import PALETTES, StationConfig, check_pin, check_pin_format, hash_pin
from station.errors import StationError
from station.screen.guidance import DEFAULT_GUIDANCE


def _spin(value: float, low: float, high: float, step: float = 0.1) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(2)
    box.setValue(value)
    return box


class SettingsDialog(QDialog):
    """Page 1 asks for the PIN (or sets the first one); page 2 edits the settings."""

    def __init__(self, config: StationConfig, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Station settings (technician)")
        self.setFont(QFont("Sans", 15))
        self.config = config
        self.unlocked = False
        self.pages = QStackedWidget()
        self.pages.addWidget(self._pin_page())
        self.pages.addWidget(self._settings_page())
        self.error = QLabel()
        self.error.setStyleSheet("color: #d50000;")
        self.box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.box.accepted.connect(self.accept)
        self.box.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages)
        layout.addWidget(self.error)
        layout.addWidget(self.box)

    def _pin_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.pin = QLineEdit()
        self.pin.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin_again = QLineEdit()
        self.pin_again.setEchoMode(QLineEdit.EchoMode.Password)
        if self.config.pin_hash is None:
            form.addRow(QLabel("No technician PIN yet: choose one (4-12 digits)."))
            form.addRow("New PIN", self.pin)
            form.addRow("Again", self.pin_again)
        else:
            form.addRow("Technician PIN", self.pin)
        return page

    def _settings_page(self) -> QWidget:
        c = self.config
        page = QWidget()
        form = QFormLayout(page)
        self.elevated = _spin(c.elevated_c, 35.0, 40.0)
        self.fever = _spin(c.fever_c, 35.5, 41.0)
        self.offset = _spin(c.skin_to_body_offset_c, 0.0, 3.0, 0.01)
        self.mode = QComboBox()
        self.mode.addItems(["absolute", "relative"])
        self.mode.setCurrentText(c.mode)
        self.margin = _spin(c.relative_margin_c, 0.3, 3.0)
        self.volume = QSlider()
        self.volume.setOrientation(self.volume.orientation().Horizontal)
        self.volume.setRange(0, 100)
        self.volume.setValue(int(round(100 * c.volume)))
        self.palette = QComboBox()
        self.palette.addItems(list(PALETTES))
        self.palette.setCurrentText(c.palette)
        form.addRow("Elevated at (body °C)", self.elevated)
        form.addRow("Fever at (body °C)", self.fever)
        form.addRow("Skin-to-body offset (°C)", self.offset)
        form.addRow("Alarm mode", self.mode)
        form.addRow("Relative mode: above baseline by (°C)", self.margin)
        form.addRow("Alarm volume", self.volume)
        form.addRow("Thermal palette", self.palette)
        self.guidance = {}
        for flag, default in DEFAULT_GUIDANCE.items():
            edit = QLineEdit(c.guidance.get(flag, default))
            self.guidance[flag] = edit
            form.addRow(f"Guidance: {flag.replace('_', ' ')}", edit)
        return page

    def accept(self) -> None:
        if not self.unlocked:
            self._unlock()
            return
        try:
            self.result_config().check()
        except StationError as exc:
            self.error.setText(str(exc))
            return
        super().accept()

    def _unlock(self) -> None:
        pin = self.pin.text().strip()
        if self.config.pin_hash is None:
            try:
                check_pin_format(pin)
            except StationError as exc:
                self.error.setText(str(exc))
                return
            if pin != self.pin_again.text().strip():
                self.error.setText("The two PINs differ")
                return
            self.config = dataclasses.replace(self.config, pin_hash=hash_pin(pin))
        elif not check_pin(pin, self.config.pin_hash):
            self.error.setText("Wrong PIN: settings stay locked")
            self.pin.clear()
            return
        self.unlocked = True
        self.error.clear()
        self.pages.setCurrentIndex(1)

    def result_config(self) -> StationConfig:
        """The edited settings (unchanged while locked: a guard cannot change anything)."""
        if not self.unlocked:
            return self.config
        return dataclasses.replace(
            self.config,
            elevated_c=self.elevated.value(),
            fever_c=self.fever.value(),
            skin_to_body_offset_c=self.offset.value(),
            mode=self.mode.currentText(),
            relative_margin_c=self.margin.value(),
            volume=self.volume.value() / 100,
            palette=self.palette.currentText(),
            guidance={flag: edit.text().strip() or DEFAULT_GUIDANCE[flag] for flag, edit in self.guidance.items()},
        )
