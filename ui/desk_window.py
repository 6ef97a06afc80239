"""The security desk's window: every station at a glance, and every alarm of the fleet until it is answered.

Built from the station window's parts, so a guard who knows one knows the other: the same alarm banner
(:class:`ui.alarm_banner.AlarmBanner`: full width, flashing, latched, oldest first, "+N more waiting"),
the same tone (:class:`ui.sound.AlarmSound`), the same acknowledgement dialog
(:class:`ui.ack_dialog.AcknowledgeDialog`) and the same level colours (:data:`station.types.LEVEL_COLOURS`).

What the desk adds: a tile per station (green online, grey offline, with why; last heartbeat, blackbody
error, calibration age, storage fault, frame rates, today's counters, open alarms), one list of every
open alarm across stations, and the history of the station whose tile was clicked.

Composition only: the fleet's state lives in :class:`station.fleet.desk.DeskState`, fed by
:class:`station.fleet.desk.DeskClient`, whose network thread only queues and wakes this (the GUI) thread
through a queued signal; a 200 ms timer re-judges who is online (silence turns a station offline) and
the "seconds ago" texts.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QKeySequence, QShortcut
from PyQt6.QtWidgets import (
    QApplication,
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from station.config import StationConfig
from station.errors import StationError
from station.fleet.desk import DeskClient, Screening, StationTile
from station.log.report import BLACKBODY_TOLERANCE_C
from station.profile.schema import MAX_CALIBRATION_AGE_DAYS
from station.types import LEVEL_COLOURS, Level
from ui.ack_dialog import AcknowledgeDialog
from ui.alarm_banner import AlarmBanner, PendingAlarm, temperature_text
from ui.sound import AlarmSound

POLL_MS = 200
ONLINE = LEVEL_COLOURS[Level.NORMAL]  # green: the station is screening and heard from
OFFLINE = LEVEL_COLOURS[Level.RETRY]  # grey: nothing it says can be trusted to be current
WARN = LEVEL_COLOURS[Level.ELEVATED]
FAULT = LEVEL_COLOURS[Level.FEVER]
TILE_COLUMNS = 4
HISTORY_COLUMNS = ("Time", "Level", "Body °C", "Read at", "Screening")


def local_time(wall_time: str) -> str:
    """A station's ISO UTC wall time as the desk's local ``HH:MM:SS`` (the text itself if unreadable)."""
    try:
        moment = datetime.fromisoformat(wall_time)
    except (TypeError, ValueError):
        return str(wall_time or "-")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%H:%M:%S")


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


class DeskAlarm(PendingAlarm):
    """A :class:`PendingAlarm` that knows which station raised it (the banner shows its headline)."""

    def __init__(self, screening: Screening) -> None:
        super().__init__(screening.screening_id, -1, screening.level, screening.body_c, screening.skin_c, 0.0,
                         emitted_at=screening.received_at, u95_c=screening.u95_c, uncertain=screening.uncertain)
        self.screening = screening
        self.site = screening.site
        self.station = screening.station

    @property
    def key(self) -> tuple[str, int]:
        return self.screening.key

    def headline(self) -> str:
        return f"{self.station}: {super().headline()} ({self.site}, {local_time(self.screening.wall_time)})"

    def line(self) -> str:
        """One row of the alarm list."""
        temp = "" if self.body_c is None else f"  {temperature_text(self.body_c, self.u95_c)}"
        return (f"{local_time(self.screening.wall_time)}   {self.station} ({self.site})   "
                f"{self.level.upper()}{temp}")


class StationTileWidget(QFrame):
    """One station: its name and state in large letters, then what a technician would ask about."""

    clicked = pyqtSignal(str)

    def __init__(self, station: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.station = station
        self.setObjectName("tile")
        self.setMinimumSize(300, 210)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.name = QLabel(station)
        self.name.setFont(QFont("Sans", 22, QFont.Weight.Bold))
        self.state = QLabel()
        self.state.setFont(QFont("Sans", 15, QFont.Weight.Bold))
        self.state.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.alarms = QLabel()
        self.alarms.setFont(QFont("Sans", 14, QFont.Weight.Bold))
        self.alarms.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.site = QLabel()
        self.heard = QLabel()
        self.reference = QLabel()  # blackbody and calibration
        self.fps = QLabel()
        self.storage = QLabel()
        self.counts = QLabel()
        self.counts.setFont(QFont("Sans", 13, QFont.Weight.Bold))
        top = QHBoxLayout()
        top.addWidget(self.name, 1)
        top.addWidget(self.state)
        layout = QVBoxLayout(self)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.site)
        for label in (self.heard, self.reference, self.fps, self.storage):
            label.setFont(QFont("Sans", 12))
            label.setWordWrap(True)
            layout.addWidget(label)
        layout.addWidget(self.counts)
        layout.addWidget(self.alarms)
        self.selected = False
        self._style: tuple | None = None

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.clicked.emit(self.station)
        super().mousePressEvent(event)

    def show_tile(self, tile: StationTile, now: float, open_alarms: int, selected: bool) -> None:
        online = tile.online
        beat = tile.heartbeat
        self.state.setText("ONLINE" if online else "OFFLINE")
        self.site.setText(f"site {tile.site}" + ("" if online else f" · {tile.offline_reason}"))
        heard = ago(tile.silent_s(now))
        self.heard.setText(f"Heartbeat {local_time(beat.wall_time)} ({heard})" if beat is not None
                           else "No heartbeat since the desk started")
        problems: list[str] = []
        bits: list[str] = []
        if beat is not None and beat.blackbody_error_c is not None:
            bits.append(f"Blackbody error {beat.blackbody_error_c:+.2f} °C")
            if abs(beat.blackbody_error_c) > BLACKBODY_TOLERANCE_C:
                problems.append("blackbody")
        else:
            bits.append("Blackbody error unknown")
        if beat is not None and beat.calibration_age_days is not None:
            bits.append(f"calibration {beat.calibration_age_days:.0f} d")
            if beat.calibration_age_days > MAX_CALIBRATION_AGE_DAYS:
                problems.append("calibration")
        else:
            bits.append("calibration age unknown")
        self.reference.setText(" · ".join(bits))
        if beat is not None:
            fps = [f"{name} {value:.1f}" for name, value in (("visible", beat.visible_fps),
                                                            ("thermal", beat.thermal_fps)) if value is not None]
            waiting = f" · {beat.outbox_rows} rows waiting" if beat.outbox_rows else ""
            self.fps.setText(("Frames/s " + ", ".join(fps) if fps else "Frames/s -") + waiting)
            fault = beat.storage_fault
        else:
            self.fps.setText("Frames/s -")
            fault = None
        self.storage.setText(f"STORAGE FAULT: {fault}" if fault else "Storage OK")
        today = tile.today
        parts = [f"Today {today.get('screened', 0)} screened"]
        parts += [f"{today[level]} {level}" for level in (Level.FEVER, Level.ELEVATED, Level.RETRY) if today.get(level)]
        self.counts.setText(" · ".join(parts))
        self.alarms.setText(f"{open_alarms} OPEN ALARM{'S' if open_alarms != 1 else ''}" if open_alarms else "")
        self.alarms.setVisible(bool(open_alarms))
        style = (online, bool(fault), tuple(problems), selected)
        if style != self._style:
            self._style = style
            self._restyle(*style)

    def _restyle(self, online: bool, fault: bool, problems: tuple[str, ...], selected: bool) -> None:
        background = ONLINE if online else OFFLINE
        border = "5px solid #0d47a1" if selected else "5px solid transparent"
        warn = f"background: {WARN}; color: #000000; padding: 1px 4px;"
        fault_style = f"background: {FAULT}; color: #ffffff; padding: 1px 4px; font-weight: bold;"
        self.setStyleSheet(f"QFrame#tile {{ background: {background}; border: {border}; border-radius: 8px; }} "
                           "QLabel { color: #ffffff; background: transparent; }")
        self.storage.setStyleSheet(fault_style if fault else "")
        self.reference.setStyleSheet(warn if problems else "")
        self.alarms.setStyleSheet(fault_style)


class DeskWindow(QMainWindow):
    """The desk around one :class:`DeskClient` (started by the caller; closed here on close).

    Parameters
    ----------
    client
        Feeds the state; :meth:`DeskClient.acknowledge` sends and records what the guard decides.
    operator
        Who acknowledges at this desk (a role or badge label).
    fever_c
        The fever threshold the acknowledgement dialog holds a thermometer reading to.
    """

    alarm_shown = pyqtSignal(object)  # DeskAlarm, the moment it reaches the banner and the list
    _woken = pyqtSignal()

    def __init__(self, client: DeskClient, *, operator: str = "desk", fever_c: float = StationConfig.fever_c,
                 poll_ms: int = POLL_MS) -> None:
        super().__init__()
        self.client = client
        self.state = client.state
        self.operator = operator
        self.fever_c = float(fever_c)
        self.setWindowTitle("Fever screening: security desk")
        self.setFont(QFont("Sans", 14))
        self._shown: dict[tuple[str, int], DeskAlarm] = {}
        self._drawn_revision = -1
        self._history_drawn: tuple | None = None
        self.selected: str | None = None
        self.tiles: dict[str, StationTileWidget] = {}
        self.latencies: list[float] = []  # seconds from a row's arrival to the banner, for the bench

        self.banner = AlarmBanner()
        self.banner.acknowledge_requested.connect(self.acknowledge)
        self.system_strip = QLabel()
        self.system_strip.setFont(QFont("Sans", 18, QFont.Weight.Bold))
        self.system_strip.setStyleSheet("background: #ffca28; color: #000; padding: 8px;")
        self.system_strip.setWordWrap(True)
        self.system_strip.hide()
        self.summary = QLabel()
        self.summary.setFont(QFont("Sans", 18, QFont.Weight.Bold))

        self.tile_grid = QGridLayout()
        self.tile_grid.setSpacing(10)
        tiles_host = QWidget()
        tiles_column = QVBoxLayout(tiles_host)
        tiles_column.addLayout(self.tile_grid)
        tiles_column.addStretch(1)
        self.no_stations = QLabel("No station heard from yet")
        self.no_stations.setFont(QFont("Sans", 16))
        tiles_column.insertWidget(0, self.no_stations)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(tiles_host)
        scroll.setFrameShape(QFrame.Shape.NoFrame)

        self.alarm_title = QLabel()
        self.alarm_title.setFont(QFont("Sans", 16, QFont.Weight.Bold))
        self.alarm_list = QListWidget()
        self.alarm_list.setFont(QFont("Sans", 15, QFont.Weight.Bold))
        self.alarm_list.itemDoubleClicked.connect(self._acknowledge_item)
        self.ack_button = QPushButton("Acknowledge selected")
        self.ack_button.setFont(QFont("Sans", 15, QFont.Weight.Bold))
        self.ack_button.setMinimumHeight(48)
        self.ack_button.clicked.connect(self._acknowledge_selected)
        alarms_box = QWidget()
        alarms_column = QVBoxLayout(alarms_box)
        alarms_column.addWidget(self.alarm_title)
        alarms_column.addWidget(self.alarm_list, 1)
        alarms_column.addWidget(self.ack_button)

        self.history_title = QLabel()
        self.history_title.setFont(QFont("Sans", 16, QFont.Weight.Bold))
        self.history = QTableWidget(0, len(HISTORY_COLUMNS))
        self.history.setHorizontalHeaderLabels(HISTORY_COLUMNS)
        self.history.verticalHeader().setVisible(False)
        self.history.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.history.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.history.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.history.setFont(QFont("Sans", 13))
        history_box = QWidget()
        history_column = QVBoxLayout(history_box)
        history_column.addWidget(self.history_title)
        history_column.addWidget(self.history, 1)

        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.addWidget(alarms_box)
        lower.addWidget(history_box)
        lower.setSizes([500, 700])
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(scroll)
        body.addWidget(lower)
        body.setSizes([480, 320])
        column = QVBoxLayout()
        column.addWidget(self.banner)
        column.addWidget(self.system_strip)
        column.addWidget(self.summary)
        column.addWidget(body, 1)
        central = QWidget()
        central.setLayout(column)
        self.setCentralWidget(central)
        self.status_message = QLabel()  # what became of the last acknowledgement; the whole of it in the tooltip
        self.status_message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status_message.setStyleSheet("padding: 0 12px;")
        self.statusBar().addPermanentWidget(self.status_message, 1)

        self.sound = AlarmSound(parent=self)
        if self.sound.fallback_message:
            self.say(self.sound.fallback_message)
        self.sound.fallback.connect(self.say)
        for key in ("F2", "Space"):
            QShortcut(QKeySequence(key), self, activated=self.banner.request_acknowledge)

        # paho's thread calls client.on_message; the signal crosses to this thread (queued), where tick() runs
        self._woken.connect(self.tick, Qt.ConnectionType.QueuedConnection)
        client.set_waker(self._woken.emit)
        self.destroyed.connect(lambda *_: client.set_waker(None))  # never wake a window that is gone
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.tick)
        self.timer.start()
        self.tick()

    def say(self, text: str) -> None:
        """A message in the status bar (the whole of it in the tooltip, if the bar is too narrow)."""
        self.status_message.setText(text)
        self.status_message.setToolTip(text)

    # ------------------------------------------------------------------ feeding
    def tick(self) -> None:
        """Apply what arrived, re-judge who is online, redraw what changed (the clocks every tick)."""
        self.client.poll()
        if self.state.revision != self._drawn_revision:
            self._drawn_revision = self.state.revision
            self.render()
        else:
            self._draw_tiles()  # the "seconds ago" texts
        self._draw_connection()

    def render(self) -> None:
        self._sync_alarms()
        self._draw_tiles()
        self._draw_summary()
        self._draw_history()

    def _sync_alarms(self) -> None:
        """The banner and the list hold exactly the state's latched alarms, oldest first."""
        wanted = self.state.alarms()
        keys = [s.key for s in wanted]
        now = time.monotonic()
        for screening in wanted:
            if screening.key not in self._shown:
                alarm = DeskAlarm(screening)
                alarm.shown_at = now
                self._shown[screening.key] = alarm
                if screening.received_at is not None:
                    self.latencies.append(now - screening.received_at)
                self.alarm_shown.emit(alarm)
        wanted_keys = set(keys)
        for key in [k for k in self._shown if k not in wanted_keys]:
            del self._shown[key]
        pending = [a.key for a in self.banner.pending()]
        if pending != keys:
            if pending == keys[:len(pending)]:  # only new ones, after those shown: the shown one stays
                for key in keys[len(pending):]:
                    self.banner.push(self._shown[key])
            else:
                for alarm in self.banner.pending():
                    self.banner.resolve(alarm)
                for key in keys:
                    self.banner.push(self._shown[key])
        listed = [self.alarm_list.item(r).data(Qt.ItemDataRole.UserRole) for r in range(self.alarm_list.count())]
        if listed != keys:  # rebuilt only when the alarms change: a heartbeat must not move the guard's selection
            current = self.alarm_list.currentItem()
            chosen = current.data(Qt.ItemDataRole.UserRole) if current is not None else None
            self.alarm_list.clear()
            for key in keys:
                alarm = self._shown[key]
                item = QListWidgetItem(alarm.line())
                item.setData(Qt.ItemDataRole.UserRole, key)
                item.setForeground(QColor(LEVEL_COLOURS.get(alarm.level, "#000000")))
                self.alarm_list.addItem(item)
            if keys:
                self.alarm_list.setCurrentRow(keys.index(chosen) if chosen in wanted_keys else 0)
        self.alarm_title.setText(f"Open alarms, oldest first: {len(keys)}" if keys else "No open alarm")
        self.ack_button.setEnabled(bool(keys))
        if keys:
            self.sound.play()
        else:
            self.sound.stop()

    def _draw_tiles(self) -> None:
        tiles = self.state.stations()
        if self.selected is None and tiles:
            self.selected = tiles[0].station
        now = time.monotonic()
        if [t.station for t in tiles] != list(self.tiles):
            for widget in self.tiles.values():
                self.tile_grid.removeWidget(widget)
                widget.deleteLater()
            self.tiles = {}
            for index, tile in enumerate(tiles):
                widget = StationTileWidget(tile.station)
                widget.clicked.connect(self.select_station)
                self.tile_grid.addWidget(widget, index // TILE_COLUMNS, index % TILE_COLUMNS)
                self.tiles[tile.station] = widget
        self.no_stations.setVisible(not tiles)
        for tile in tiles:
            self.tiles[tile.station].show_tile(tile, now, self.state.open_alarms(tile.station),
                                               tile.station == self.selected)

    def _draw_summary(self) -> None:
        tiles = self.state.stations()
        online = sum(1 for t in tiles if t.online)
        today = self.state.counts_today()
        levels = " · ".join(f"{today[level]} {level}" for level in (Level.FEVER, Level.ELEVATED, Level.RETRY)
                            if today.get(level))
        self.summary.setText(f"{online} of {len(tiles)} stations online    Today {today.get('screened', 0)} "
                             f"screened" + (f" · {levels}" if levels else ""))

    def _draw_connection(self) -> None:
        problem = None if self.client.connected else (self.client.problem or "connecting to the broker")
        text = f"DESK NOT CONNECTED: {problem}. Stations' states and alarms are NOT current." if problem else ""
        if text != self.system_strip.text():
            self.system_strip.setText(text)
            self.system_strip.setVisible(bool(text))

    def select_station(self, station: str) -> None:
        self.selected = station
        self._draw_tiles()
        self._draw_history()

    def _draw_history(self) -> None:
        tile = self.state.tiles.get(self.selected) if self.selected else None
        rows = list(reversed(tile.history)) if tile is not None else []
        drawn = (self.selected, tuple(s.key for s in rows))
        if drawn == self._history_drawn:
            return
        self._history_drawn = drawn
        self.history_title.setText(f"History of {tile.station} ({tile.site}), newest first" if tile
                                   else "History: click a station")
        self.history.setRowCount(len(rows))
        for r, s in enumerate(rows):
            temp = "" if s.body_c is None else temperature_text(s.body_c, s.u95_c)
            where = {"forehead_mouth": "forehead (glasses)", "canthus": "canthus"}.get(s.skin_site or "", "-")
            acked = " ✓" if s.is_alarm and self.state.is_acknowledged(s.station, s.screening_id) else ""
            values = (local_time(s.wall_time), s.level.upper() + acked, temp, where, str(s.screening_id))
            colour = QColor(LEVEL_COLOURS.get(s.level, "#000000"))
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setForeground(colour)
                if c == 1:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.history.setItem(r, c, item)

    # ------------------------------------------------------------------ acknowledging
    def _acknowledge_item(self, item: QListWidgetItem) -> None:
        alarm = self._shown.get(item.data(Qt.ItemDataRole.UserRole))
        if alarm is not None:
            self.acknowledge(alarm)

    def _acknowledge_selected(self) -> None:
        item = self.alarm_list.currentItem()
        if item is not None:
            self._acknowledge_item(item)

    def acknowledge(self, alarm: DeskAlarm) -> None:
        dialog = AcknowledgeDialog(alarm, self, fever_c=self.fever_c)
        dialog.setWindowTitle(f"Acknowledge alarm of {alarm.station} at the desk")
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        self.record_acknowledgement(alarm, *dialog.values())

    def record_acknowledgement(self, alarm: DeskAlarm, action: str, thermometer_c: float | None,
                               note: str) -> None:
        """Send the acknowledgement to the station and record it centrally; release the alarm here."""
        try:
            outcome = self.client.acknowledge(alarm.site, alarm.station, alarm.screening.screening_id, action,
                                              self.operator, note, thermometer_c)
        except StationError as exc:
            self.say(f"acknowledgement NOT made: {exc}")
            return
        said = f"{alarm.station} screening {alarm.screening.screening_id}: acknowledged at the desk by " \
               f"{self.operator} ({action})"
        self.say(said + ("; " + "; ".join(outcome.problems) if outcome.problems else ""))
        self.render()

    # ------------------------------------------------------------------ closing
    def shutdown(self) -> None:
        if not self.timer.isActive():
            return
        self.timer.stop()
        self.sound.stop()
        self.client.set_waker(None)
        self.client.close()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)


def run_desk(client: DeskClient, *, operator: str, size: tuple[int, int] = (1600, 900),
             screenshot: Path | None = None, after_s: float = 5.0) -> int:
    """Open the desk until it is closed, or grab it to a PNG after ``after_s`` seconds and quit.

    The client is started by the caller (so a bad DSN or a refused login is one line before any window);
    it is closed here. Returns the exit code (non-zero when the screenshot cannot be written).

    Raises
    ------
    StationError
        Qt's platform plugin cannot start here (asked of a child process first: Qt would abort this one).
    """
    from station.qt_probe import probe_platform

    app = QApplication.instance()
    if app is None:
        probe = probe_platform()
        if not probe.ok:
            client.close()
            raise StationError(probe.message())
        app = QApplication(sys.argv[:1])
    window = DeskWindow(client, operator=operator)
    window.resize(*size)
    window.show()
    outcome = {"code": 0}
    if screenshot is not None:
        def grab() -> None:
            window.tick()
            if not window.grab().save(str(screenshot), "PNG"):
                print(f"Error: {screenshot}: cannot write the screenshot", file=sys.stderr)
                outcome["code"] = 1
            window.close()

        QTimer.singleShot(int(after_s * 1000), grab)
    app.exec()
    window.shutdown()
    return outcome["code"]
