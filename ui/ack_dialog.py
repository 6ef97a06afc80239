"""The guard's acknowledgement: what was done about an alarm, kept in the log.

An alarm is a request to check a person, so its acknowledgement records the check: cleared by a
clinical thermometer (with the reading), referred on, or measured again. A note is free text and must
never name the person; the dialog says so.
"""

from __future__ import annotations

from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from station.alarm import check_action
from station.errors import StationError
from ui.alarm_banner import PendingAlarm

ACTIONS = (
    ("cleared_secondary_check", "Cleared after secondary check"),
    ("referred", "Referred"),
    ("re_measure", "Re-measure"),
)


class AcknowledgeDialog(QDialog):
    def __init__(self, alarm: PendingAlarm, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Acknowledge alarm")
        self.setFont(QFont("Sans", 16))
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(alarm.headline()))
        self.group = QButtonGroup(self)
        self.buttons: dict[str, QRadioButton] = {}
        for value, label in ACTIONS:
            button = QRadioButton(label)
            self.group.addButton(button)
            self.buttons[value] = button
            layout.addWidget(button)
        self.buttons["cleared_secondary_check"].setChecked(True)
        layout.addWidget(QLabel("Clinical thermometer, °C (optional)"))
        self.thermometer = QLineEdit()
        self.thermometer.setPlaceholderText("e.g. 37.1")
        layout.addWidget(self.thermometer)
        layout.addWidget(QLabel("Note (never the person's name)"))
        self.note = QLineEdit()
        layout.addWidget(self.note)
        self.error = QLabel()
        self.error.setStyleSheet("color: #d50000;")
        layout.addWidget(self.error)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        box.accepted.connect(self.accept)
        box.rejected.connect(self.reject)
        layout.addWidget(box)

    def action(self) -> str:
        return next(value for value, button in self.buttons.items() if button.isChecked())

    def thermometer_c(self) -> float | None:
        text = self.thermometer.text().strip().replace(",", ".")
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise StationError(f"thermometer reading: expected a number in °C, got {text!r}") from None

    def values(self) -> tuple[str, float | None, str]:
        return self.action(), self.thermometer_c(), self.note.text().strip()

    def accept(self) -> None:
        """Refuse what the log would refuse, here and now, with the reason in the dialog."""
        try:
            action, thermometer, _ = self.values()
            check_action(action, thermometer)
        except StationError as exc:
            self.error.setText(str(exc))
            return
        super().accept()
