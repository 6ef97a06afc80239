"""The guards' station window: live views, verdicts, the alarm banner, system alarms, today's counters.

Composition only: the engine runs in :class:`ui.worker.StationWorker` on its own thread; a ~30 Hz timer
draws the latest tick; decisions and system events arrive by queued signals the moment the engine makes
them, so an alarm reaches the banner whatever the drawing rate. Acknowledgements go through the event
store's API on this (the GUI) thread's own SQLite connection.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import cv2
from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QIcon, QKeySequence, QShortcut
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from station.config import StationConfig, save_config
from station.errors import StationError
from station.headless import snapshots_dir_for
from station.log.store import EventStore
from station.pipeline import Station, Tick
from station.profile import verification
from station.screen.guidance import guidance_for
from station.types import ALARM_LEVELS, LEVEL_COLOURS, EventKind, ScreeningDecision, SystemEvent
from ui.ack_dialog import AcknowledgeDialog
from ui.alarm_banner import AlarmBanner, PendingAlarm, bgr_pixmap, temperature_text
from ui.settings_dialog import SettingsDialog
from ui.sound import AlarmSound
from ui.views import FaceMark, ImageView, ThermalView
from ui.worker import DecisionNote, StationFactory, StationWorker, start_worker

FRAME_MS = 33  # ~30 Hz drawing
HISTORY_ROWS = 200
#: After a temperature read on the forehead and mouth because glasses hid the canthi: the guard sees the
#: reading came from the second site (less certain than the canthi; an alarm is re-measured all the same).
SITE_NOTE = " (glasses)"


class HistoryPanel(QWidget):
    """The latest screenings, newest first, with thumbnails for alarms only and a filter by level."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filter = QComboBox()
        self.filter.addItems(["All", "fever", "elevated", "retry", "normal"])
        self.filter.currentTextChanged.connect(self._apply_filter)
        self.list = QListWidget()
        self.list.setFont(QFont("Sans", 13))
        self.list.setIconSize(self.list.iconSize() * 3)
        # A long row (a retry's reasons, "(glasses)") wraps rather than hiding behind a sideways scroll.
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        title = QLabel("Latest screenings")
        title.setFont(QFont("Sans", 16, QFont.Weight.Bold))
        layout.addWidget(title)
        layout.addWidget(self.filter)
        layout.addWidget(self.list, 1)

    def add(self, level: str, body_c: float | None, quality, wall: str, thumbnail=None,
            site: str | None = "canthus", u95_c: float | None = None) -> None:
        """One screening at the top; ``thumbnail`` (BGR) only for alarms: the least image that helps.
        A temperature read on the forehead and mouth (glasses hid the canthi) says so, and every one
        carries its 95 % interval when the log has it."""
        temp = "" if body_c is None else (f" {temperature_text(body_c, u95_c)}"
                                          + (SITE_NOTE if site == "forehead_mouth" else ""))
        why = f" ({', '.join(sorted(quality))})" if level == "retry" and quality else ""
        item = QListWidgetItem(f"{wall}  {level.upper()}{temp}{why}")
        item.setData(Qt.ItemDataRole.UserRole, level)
        item.setForeground(QColor(LEVEL_COLOURS.get(level, "#000000")))
        if thumbnail is not None and thumbnail.size and level in ALARM_LEVELS:
            item.setIcon(QIcon(bgr_pixmap(thumbnail, 64)))
        self.list.insertItem(0, item)
        while self.list.count() > HISTORY_ROWS:
            self.list.takeItem(self.list.count() - 1)
        self._apply_filter(self.filter.currentText())

    def load(self, store: EventStore, snapshots_dir: Path) -> None:
        """The log's latest screenings, oldest first so the newest ends on top, with alarm thumbnails."""
        rows = store.screenings()[-HISTORY_ROWS:]
        for row in rows:
            thumbnail = None
            if row["level"] in ALARM_LEVELS:
                for snap in store.snapshots(row["id"]):
                    if snap["kind"] == "visible":
                        thumbnail = cv2.imread(str(snapshots_dir / snap["path"]))
            wall = str(row.get("wall_time") or "")[11:19]
            self.add(row["level"], row["body_c"], row["quality"], wall, thumbnail, row.get("site"), row.get("u95_c"))

    def _apply_filter(self, level: str) -> None:
        for k in range(self.list.count()):
            item = self.list.item(k)
            item.setHidden(level != "All" and item.data(Qt.ItemDataRole.UserRole) != level)


class StatusMessage(QLabel):
    """The status bar's message: it takes the room the other fields leave, and never loses its end.

    A plain label is cut off at the status bar's edge ("No audio (libpulse.so.0): alarms use the
    syste"), and the end of a message is often the part that says what happens now. This one stretches
    over the free width, elides with "…" only when even that is too narrow, and keeps the full text in
    its tooltip (and in :meth:`text`), so nothing the station says is out of reach.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        # Ignored: the layout gives it whatever width is left, instead of its text's width pushing the
        # other fields (frame rates, calibration, blackbody, model) off the bar.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setStyleSheet("padding: 0 12px;")  # the other fields' padding, and with it their font size

    def setText(self, text: str | None) -> None:  # noqa: N802 - Qt's name
        """Show ``text``, elided to the room there is; the whole of it stays in the tooltip."""
        self._full = text or ""
        self.setToolTip(self._full)
        self._elide()

    def text(self) -> str:
        """The whole message, however much of it fits."""
        return self._full

    def shown(self) -> str:
        """What is drawn: the message, or its start and "…" when the bar is too narrow."""
        return super().text()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = self.contentsRect().width()
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, width) if width > 0 \
            else self._full
        super().setText(shown)


class MainWindow(QMainWindow):
    """The station window around one worker. ``db_path``: the log acknowledgements are written to."""

    alarm_shown = pyqtSignal(object)  # PendingAlarm, when the banner shows it (bench/ui.py measures this)

    def __init__(self, factory: StationFactory, *, db_path: Path | None, config: StationConfig | None = None,
                 config_path: Path | None = None) -> None:
        super().__init__()
        self.config = config or StationConfig()
        self.config_path = config_path
        self.setWindowTitle("Fever screening station")
        self.setFont(QFont("Sans", 16))
        self.db_path = db_path
        self._ack_store: EventStore | None = None
        self.decided: dict[int, ScreeningDecision] = {}
        self.counts: Counter = Counter()
        self.lost: set[str] = set()
        self.storage_fault: str | None = None  # the log cannot be written: screening goes on, rows wait
        self.blackbody_state: tuple[str, str] | None = None
        self.station: Station | None = None
        self.ended = False
        self.engine_error: str | None = None
        self._drawn_state: tuple | None = None
        self.draw_seconds = 0.0
        self.frames_drawn = 0
        self._tick_times: dict[str, list[tuple[float, int]]] = {"visible": [], "thermal": []}

        self.banner = AlarmBanner()
        self.banner.acknowledge_requested.connect(self.acknowledge)
        self.system_strip = QLabel()
        self.system_strip.setFont(QFont("Sans", 20, QFont.Weight.Bold))
        self.system_strip.setStyleSheet("background: #ffca28; color: #000; padding: 8px;")
        self.system_strip.hide()
        self.visible_view = ImageView("visible")
        self.thermal_view = ThermalView()

        self.history = HistoryPanel()
        self.history.setMaximumWidth(380)
        self.counters = QLabel()
        self.counters.setFont(QFont("Sans", 20, QFont.Weight.Bold))
        self.settings_button = QPushButton("Settings (technician)")
        self.settings_button.clicked.connect(self.open_settings)

        views = QHBoxLayout()
        views.addWidget(self.visible_view, 4)
        views.addWidget(self.thermal_view, 3)
        side = QVBoxLayout()
        side.addWidget(self.counters)
        side.addWidget(self.history, 1)
        side.addWidget(self.settings_button)
        body = QGridLayout()
        body.addLayout(views, 0, 0)
        body.addLayout(side, 0, 1)
        body.setColumnStretch(0, 1)
        column = QVBoxLayout()
        column.addWidget(self.banner)
        column.addWidget(self.system_strip)
        column.addLayout(body, 1)
        central = QWidget()
        central.setLayout(column)
        self.setCentralWidget(central)

        self.status_fps = QLabel()
        self.status_calibration = QLabel()
        self.status_blackbody = QLabel()
        self.status_model = QLabel()
        self.status_message = StatusMessage()
        for label in (self.status_fps, self.status_calibration, self.status_blackbody, self.status_model):
            label.setStyleSheet("padding: 0 12px;")
            self.statusBar().addWidget(label)
        self.statusBar().addPermanentWidget(self.status_message, 1)
        self._update_counters()

        self.sound = AlarmSound(self.config.volume, parent=self)
        if self.sound.fallback_message:
            self.status_message.setText(self.sound.fallback_message)
        self.sound.fallback.connect(self.status_message.setText)
        for key in ("F2", "Space"):
            QShortcut(QKeySequence(key), self, activated=self.banner.request_acknowledge)
        self.apply_display_settings()

        self.worker = StationWorker(factory)
        self.worker.decision.connect(self.on_decision, Qt.ConnectionType.QueuedConnection)
        self.worker.system_event.connect(self.on_system_event, Qt.ConnectionType.QueuedConnection)
        self.worker.started_station.connect(self.on_station, Qt.ConnectionType.QueuedConnection)
        self.worker.remote_ack.connect(self.on_remote_ack, Qt.ConnectionType.QueuedConnection)
        self.worker.failed.connect(self.on_failed, Qt.ConnectionType.QueuedConnection)
        self.worker.finished.connect(self.on_finished, Qt.ConnectionType.QueuedConnection)
        self.thread = start_worker(self.worker)
        self.timer = QTimer(self)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(self.draw_latest)
        self.timer.start()

    # ------------------------------------------------------------------ engine signals
    def on_station(self, station: Station) -> None:
        self.station = station
        store = self._store()
        if store is not None and self.history.list.count() == 0:
            self.history.load(store, snapshots_dir_for(self.db_path))
            midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
            for row in store.screenings(since=midnight):  # "today" is the station's local day
                self.counts["screened"] += 1
                self.counts[row["level"]] += 1
            self._update_counters()
        profile = station.profile
        if profile.blackbody is not None:
            self.thermal_view.blackbody_roi = profile.blackbody.roi
        # The engine's judgement of the age: at the frames' own time, so a replay shows the age it was
        # recorded with, and a recording that does not say when it was made shows that it is unknown.
        age = station.calibration_age_days
        verified = ""
        if store is not None:
            verified = ", " + verification.summary(store.last_system_event(verification.KINDS))
        shown = "age unknown" if age is None else f"{age:.0f} d"
        self.status_calibration.setText(f"Calibration {shown}{verified}")
        self.status_model.setText(f"Model {station.detector.model_sha256[:8]}")

    def on_decision(self, note: DecisionNote) -> None:
        d = note.decision
        self.decided[d.track_id] = d
        self.counts["screened"] += 1
        self.counts[d.level] += 1
        self._update_counters()
        self.history.add(d.level, d.body_c, d.quality, time.strftime("%H:%M:%S"), note.snapshot_bgr, d.site,
                         d.u95_c)
        if d.level in ALARM_LEVELS:
            alarm = PendingAlarm(note.screening_id, d.track_id, d.level, d.body_c, d.skin_c, d.t_decided,
                                 note.snapshot_bgr, emitted_at=note.emitted_at, u95_c=d.u95_c,
                                 uncertain="uncertain" in d.quality)
            self.banner.push(alarm)
            alarm.shown_at = time.perf_counter()
            self.sound.play()
            self.alarm_shown.emit(alarm)

    def on_system_event(self, event: SystemEvent) -> None:
        if event.kind == EventKind.CAMERA_LOST:
            self.lost.add(event.stream or "camera")  # an event that names no stream still pauses screening
        elif event.kind == EventKind.CAMERA_RECOVERED:
            self.lost.discard(event.stream or "camera")
        elif event.kind.startswith("blackbody_"):
            self.blackbody_state = (event.kind, event.detail)
        elif event.kind == EventKind.STORAGE_FAULT:
            self.storage_fault = event.detail
        elif event.kind == EventKind.STORAGE_RECOVERED:
            self.storage_fault = None
        self._update_system_strip()

    def on_failed(self, message: str) -> None:
        self.engine_error = message
        self.status_message.setText(message)
        self._update_system_strip()

    def on_finished(self) -> None:
        self.ended = True
        if self.engine_error is None:
            self.status_message.setText("Input ended")

    # ------------------------------------------------------------------ drawing
    def pause_reason(self, tick: Tick | None) -> str | None:
        """Why temperatures cannot be trusted now, or None. Resumes by itself when the cause clears."""
        if self.lost:
            return f"camera lost: {', '.join(sorted(self.lost))}"
        if self.station is not None and self.station.calibration_expired:
            return "calibration expired: ask a technician to recalibrate"
        if self.station is not None and self.station.unreferenced:
            return "no temperature reference: nobody is screened"
        if tick is not None and tick.screening_paused:
            kind = self.blackbody_state[0] if self.blackbody_state else "blackbody_not_seen"
            return kind.replace("blackbody_", "blackbody ").replace("_", " ")
        return None

    def draw_latest(self) -> None:
        tick = self.worker.latest()
        if tick is None:
            return
        start = time.perf_counter()
        paused = self.pause_reason(tick)
        state = (id(tick), paused, len(self.decided), self.config.palette)
        if state == self._drawn_state:  # nothing new since the last frame drawn: the views are current
            return
        self._drawn_state = state
        visible_marks, thermal_marks = self._marks(tick, paused)
        if tick.pair.visible is not None:
            self.visible_view.show(tick.pair.visible.image[:, :, ::-1], visible_marks, paused)
        self.thermal_view.show_celsius(tick.thermal.celsius, thermal_marks, paused)
        error = tick.thermal.blackbody_error_c
        self.thermal_view.blackbody_text = "" if error is None else f"blackbody {error:+.2f} °C"
        self.status_blackbody.setText("Blackbody —" if error is None else f"Blackbody error {error:+.2f} °C")
        self._update_fps(tick)
        self.draw_seconds += time.perf_counter() - start
        self.frames_drawn += 1

    def _marks(self, tick: Tick, paused: str | None) -> tuple[list[FaceMark], list[FaceMark]]:
        by_track = {m.track_id: m for m in tick.measurements}
        visible, thermal = [], []
        for box, track_id in zip(tick.faces.xyxy, tick.track_ids, strict=False):
            track_id = int(track_id)
            decision = self.decided.get(track_id)
            measurement = by_track.get(track_id)
            if paused:
                level, label = "retry", ""
            elif decision is not None:
                level = decision.level
                label = temperature_text(decision.body_c, decision.u95_c) if decision.body_c is not None else "RETRY"
                if decision.body_c is not None and decision.site == "forehead_mouth":
                    label += SITE_NOTE
                if decision.level == "retry":
                    label = guidance_for(decision.quality, self.config.guidance) or "RETRY"
            else:
                level = "measuring"
                guidance = guidance_for(measurement.quality, self.config.guidance) if measurement is not None else None
                label = guidance or "measuring"
            visible.append(FaceMark(tuple(float(v) for v in box), level, label))
            if measurement is not None:
                thermal.append(FaceMark(measurement.thermal_xyxy, level, ""))
        return visible, thermal

    def _update_fps(self, tick: Tick) -> None:
        """Each camera's own frame rate, from frame indices over time (the drawing rate is another matter)."""
        rates = []
        for stream, frame in (("visible", tick.pair.visible), ("thermal", tick.pair.thermal)):
            if frame is None:
                continue
            seen = self._tick_times[stream]
            if not seen or frame.t != seen[-1][0]:
                seen.append((frame.t, frame.index))
                del seen[:-20]
            if len(seen) > 2 and seen[-1][0] > seen[0][0]:
                rates.append(f"{stream} {(seen[-1][1] - seen[0][1]) / (seen[-1][0] - seen[0][0]):.1f} fps")
        self.status_fps.setText(" · ".join(rates))

    def _update_counters(self) -> None:
        c = self.counts
        self.counters.setText(f"Today\nscreened {c['screened']}\nelevated {c['elevated']}\n"
                              f"fever {c['fever']}\nretry {c['retry']}")

    def _update_system_strip(self) -> None:
        problems = []
        if self.engine_error:
            problems.append(self.engine_error)
        if self.lost:
            problems.append(f"CAMERA LOST: {', '.join(sorted(self.lost))}")
        if self.blackbody_state and self.blackbody_state[0] != "blackbody_ok":
            problems.append(f"BLACKBODY: {self.blackbody_state[0].removeprefix('blackbody_').replace('_', ' ')}")
        if self.station is not None and self.station.calibration_expired:
            problems.append("CALIBRATION EXPIRED")
        if self.station is not None and self.station.unreferenced:
            problems.append("NO TEMPERATURE REFERENCE: no blackbody or reference disc, nobody is screened")
        if self.storage_fault:
            problems.append("STORAGE FAULT: decisions are held in the spill file beside the log until it can be "
                            "written")
        self.system_strip.setText(" · ".join(problems))
        self.system_strip.setVisible(bool(problems))

    # ------------------------------------------------------------------ acknowledging
    def acknowledge(self, alarm: PendingAlarm) -> None:
        dialog = AcknowledgeDialog(alarm, self, fever_c=self.config.fever_c)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        self.record_acknowledgement(alarm, *dialog.values())

    def record_acknowledgement(self, alarm: PendingAlarm, action: str, thermometer_c: float | None,
                               note: str) -> None:
        """Write the acknowledgement to the log (if the alarm was logged) and release the alarm."""
        store = self._store() if alarm.screening_id is not None else None
        if store is not None:
            try:
                store.acknowledge(alarm.screening_id, action, thermometer_c=thermometer_c, note=note,
                                  operator="guard")
            except StationError as exc:  # the alarm is released all the same; the guard is told
                self.status_message.setText(f"acknowledgement NOT logged: {exc}")
        if action == "re_measure":
            self.worker.request_remeasure(alarm.level)
        self.banner.resolve(alarm)
        if not self.banner.pending():
            self.sound.stop()

    def on_remote_ack(self, ack: tuple[int, str, str]) -> None:
        """An alarm acknowledged elsewhere (at the fleet's desk), already logged by the station: release it
        here too and say who did it, so the guard does not acknowledge it twice."""
        screening_id, who, action = ack
        for alarm in self.banner.pending():
            if alarm.screening_id == screening_id:
                if action == "re_measure":
                    self.worker.request_remeasure(alarm.level)
                self.banner.resolve(alarm)
                if not self.banner.pending():
                    self.sound.stop()
                self.status_message.setText(f"alarm {screening_id} acknowledged at {who} ({action.replace('_', ' ')})")
                return

    def _store(self) -> EventStore | None:
        """This (GUI) thread's own connection to the log (SQLite connections stay on their thread), or
        None when there is no log or it cannot be opened now (the engine reports the storage fault)."""
        if self._ack_store is None and self.db_path is not None:
            try:
                self._ack_store = EventStore(self.db_path)
            except StationError as exc:
                self.status_message.setText(f"log unavailable: {exc}")
        return self._ack_store

    # ------------------------------------------------------------------ settings
    def apply_display_settings(self) -> None:
        """What the window itself draws from the settings: palette, isotherm, guidance, volume."""
        self.thermal_view.set_palette(self.config.palette)
        self.thermal_view.isotherm_c = self.config.elevated_c - self.config.skin_to_body_offset_c
        self.sound.set_volume(self.config.volume)

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.config, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.apply_settings(dialog.result_config())

    def apply_settings(self, config: StationConfig) -> None:
        """Save, redraw with, and hand the engine the new settings (its thresholds change between two
        frame pairs; the relative mode's baseline starts afresh)."""
        config.check()
        if self.config_path is not None:
            save_config(config, self.config_path)
        self.config = config
        self.apply_display_settings()
        self.worker.apply_alarm_settings(config.to_alarm_settings())

    # ------------------------------------------------------------------ closing
    def shutdown(self, wait_ms: int = 10000) -> bool:
        """Stop the engine and wait for its thread; True if it ended in time."""
        self.timer.stop()
        self.sound.stop()
        self.worker.stop()
        ended = self.thread.wait(wait_ms)
        if self._ack_store is not None:
            self._ack_store.close()
            self._ack_store = None
        return ended

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)
