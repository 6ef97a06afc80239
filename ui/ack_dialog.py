"""The guard's acknowledgement: what was done about an alarm, kept in the log.

An alarm is a request to check a person, so its acknowledgement records the check: cleared by a
clinical thermometer (with the reading), referred on, or measured again. A note is free text and must
never name the person; the dialog says so.

The secondary check exists to catch the screening's false alarms, not to overrule a thermometer: a
clinical reading at or above the fever threshold confirms the fever, so "Cleared" with such a reading
would put a febrile person in the log and the report as cleared. The dialog refuses it and asks for
"Referred", or for a note saying why the person is cleared all the same (a reading known to be wrong,
a clinician's decision), which the log then keeps beside the reading.
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

from station.config import StationConfig
from station.errors import StationError
from station.types import check_action
from ui.alarm_banner import PendingAlarm

ACTIONS = (
    ("cleared_secondary_check", "Cleared after secondary check"),
    ("referred", "Referred"),
    ("re_measure", "Re-measure"),
)


class AcknowledgeDialog(QDialog):
    """Asks the guard what was done about ``alarm``; accepts only what the log can honestly keep.

    Parameters
    ----------
    alarm
        The alarm being acknowledged (its headline is shown).
    fever_c
        The station's fever threshold, °C body temperature (the settings' ``fever_c``, the same in
        absolute and relative mode): a clinical thermometer at or above it cannot clear the person.
    parent
        The station window.
    """

    def __init__(self, alarm: PendingAlarm, parent: QWidget | None = None, *,
                 fever_c: float = StationConfig.fever_c) -> None:
        super().__init__(parent)
        self.fever_c = float(fever_c)
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
        self.error.setWordWrap(True)  # the refusal says what to do instead: all of it must be read
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

    def refusal(self) -> str | None:
        """Why the dialog cannot accept what it holds, in words for the guard; None when it can.

        First what the log itself would refuse (an unknown action, a reading outside 30-45 °C), then
        the clinical rule: "Cleared" with a thermometer reading at or above ``fever_c`` and no note.
        """
        try:
            action, thermometer, note = self.values()
            check_action(action, thermometer)
        except StationError as exc:
            return str(exc)
        if action == "cleared_secondary_check" and thermometer is not None and thermometer >= self.fever_c \
                and not note:
            return (f"The thermometer reads {thermometer:.1f} °C, at or above the fever threshold "
                    f"({self.fever_c:.1f} °C): this person cannot be cleared. Choose Referred, or write "
                    "in the note why they are cleared all the same.")
        return None

    def accept(self) -> None:
        """Refuse what the log would refuse, or what would log a febrile person as cleared, here and
        now, with the reason in the dialog; the guard changes the action or adds a note and tries again."""
        reason = self.refusal()
        if reason is not None:
            self.error.setText(reason)
            if "fever threshold" in reason:
                self.buttons["referred"].setFocus()
            return
        self.error.clear()
        super().accept()
