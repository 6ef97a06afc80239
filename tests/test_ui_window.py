"""The guards' window, offscreen, around the real engine on the real demo recording.

What a guard relies on: the febrile visitor reaches the banner, the banner stays until acknowledged and
the acknowledgement lands in the log, colours mean fixed temperatures, no temperature is shown while
screening is paused, sound never crashes the window, and closing it stops the engine.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
from PyQt6.QtGui import QImage

from station.acquire.intake import open_intake
from station.cli.main import DEMO_RECORDING
from station.headless import open_station
from station.log.store import EventStore
from station.screen.guidance import guidance_for
from ui.ack_dialog import AcknowledgeDialog
from ui.alarm_banner import AlarmBanner, PendingAlarm
from ui.main_window import MainWindow
from ui.palette import colourise, lut
from ui.sound import AlarmSound


def demo_factory(db, fast=True):
    @contextmanager
    def factory():
        with open_intake(None, None, DEMO_RECORDING, None, fast=fast, status=None) as intake:
            with open_station(intake, db=db) as station:
                yield station

    return factory


@pytest.fixture
def window(qtbot, tmp_path, face_model):
    db = tmp_path / "station.db"
    win = MainWindow(demo_factory(db), db_path=db)
    qtbot.addWidget(win)
    win.resize(1280, 720)
    win.show()
    yield win, db
    win.shutdown()


def test_a_fever_reaches_the_banner_and_is_acknowledged_into_the_log(window, qtbot):
    win, db = window
    qtbot.waitUntil(lambda: any(a.level == "fever" for a in win.banner.pending()), timeout=60000)
    alarm = next(a for a in win.banner.pending() if a.level == "fever")
    assert win.banner.isVisible() and "FEVER" in win.banner.text.text()
    assert alarm.snapshot_bgr is not None and alarm.snapshot_bgr.ndim == 3
    assert alarm.shown_at - alarm.emitted_at < 1.0, "the banner shows an alarm within a second of the decision"
    assert win.sound.playing
    qtbot.waitUntil(lambda: win.ended, timeout=60000)
    assert win.frames_drawn > 0 and win.counts["screened"] == 9
    for pending in win.banner.pending():
        win.record_acknowledgement(pending, "cleared_secondary_check", 37.0, "oral check")
    assert not win.banner.isVisible() and not win.sound.playing
    store = EventStore(db)
    try:
        acknowledged = store.acknowledgements(alarm.screening_id)
        assert [a["action"] for a in acknowledged] == ["cleared_secondary_check"]
        assert store.unacknowledged_alarms() == []
    finally:
        store.close()


def test_paused_screening_shows_no_temperature(window, qtbot):
    win, _ = window
    qtbot.waitUntil(lambda: win.worker.latest() is not None and len(win.decided) >= 1, timeout=60000)
    qtbot.waitUntil(lambda: any(int(t) in win.decided for t in win.worker.latest().track_ids), timeout=60000)
    tick = win.worker.latest()
    visible, _ = win._marks(tick, None)
    assert any("°C" in mark.label for mark in visible), "a decided face shows its temperature"
    paused_tick = dataclasses.replace(tick, screening_paused=True)
    reason = win.pause_reason(paused_tick)
    assert reason and "blackbody" in reason
    visible, _ = win._marks(paused_tick, reason)
    assert all(mark.label == "" for mark in visible)


def test_the_window_fits_both_screen_sizes(window, qtbot):
    win, _ = window
    for size in ((1280, 720), (1920, 1080)):
        win.resize(*size)
        qtbot.waitUntil(lambda: win.frames_drawn > 0, timeout=30000)
        image = win.grab().toImage()
        assert (image.width(), image.height()) == size


def test_closing_stops_the_engine_promptly(qtbot, tmp_path, face_model):
    win = MainWindow(demo_factory(tmp_path / "s.db", fast=False), db_path=tmp_path / "s.db")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.worker.latest() is not None, timeout=30000)
    assert win.shutdown(wait_ms=5000), "the worker thread ends within 5 s of closing"


def test_fixed_levels_a_colour_always_means_the_same_temperature():
    room = np.full((4, 4), 22.0, np.float32)
    room[0, 0] = 36.5
    hot = np.full((4, 4), 38.5, np.float32)
    hot[0, 0] = 36.5
    assert (colourise(room)[0, 0] == colourise(hot)[0, 0]).all()
    assert not (colourise(room)[1, 1] == colourise(hot)[1, 1]).all()
    for name in ("iron", "grey", "rainbow"):
        assert lut(name).shape == (256, 3)
    with pytest.raises(ValueError, match="iron"):
        lut("plasma")


def test_guidance_asks_for_the_most_useful_thing_first():
    assert guidance_for({"too_far", "several_faces"}) == "One person at a time"
    assert guidance_for({"too_far", "glasses"}) == "Remove glasses"
    assert guidance_for({"motion"}) == "Hold still"
    assert guidance_for({"too_far"}, {"too_far": "Acérquese"}) == "Acérquese"
    assert guidance_for(set()) is None


def test_alarms_queue_oldest_first_and_only_acknowledgement_clears_them(qtbot):
    banner = AlarmBanner()
    qtbot.addWidget(banner)
    first = PendingAlarm(1, 4, "fever", 38.9, 37.6, 10.0)
    second = PendingAlarm(2, 7, "elevated", 37.5, 36.2, 14.0)
    banner.push(first)
    banner.push(second)
    assert banner.current() is first and "+1 more waiting" in banner.more.text()
    with qtbot.waitSignal(banner.acknowledge_requested) as signal:
        banner.request_acknowledge()
    assert signal.args == [first]
    banner.resolve(first)
    assert banner.current() is second and "ELEVATED 37.5" in banner.text.text()
    banner.resolve(second)
    assert banner.isHidden()


def test_the_acknowledgement_dialog_refuses_an_impossible_thermometer_reading(qtbot):
    dialog = AcknowledgeDialog(PendingAlarm(1, 4, "fever", 38.9, 37.6, 10.0))
    qtbot.addWidget(dialog)
    dialog.thermometer.setText("50")
    dialog.accept()
    assert dialog.result() != dialog.DialogCode.Accepted and "30 to 45" in dialog.error.text()
    dialog.thermometer.setText("37.2")
    dialog.buttons["referred"].setChecked(True)
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted
    assert dialog.values() == ("referred", 37.2, "")


def test_the_acknowledgement_dialog_will_not_clear_a_thermometer_fever(qtbot):
    """A clinical reading at or above the fever threshold confirms the fever: "Cleared" is refused until
    the guard chooses Referred, or writes in the note why the person is cleared all the same."""
    dialog = AcknowledgeDialog(PendingAlarm(1, 4, "fever", 38.9, 37.6, 10.0), fever_c=38.0)
    qtbot.addWidget(dialog)
    assert dialog.action() == "cleared_secondary_check"
    for reading in ("38.4", "38,0"):  # above, and exactly at, the threshold (a decimal comma too)
        dialog.thermometer.setText(reading)
        dialog.accept()
        assert dialog.result() != dialog.DialogCode.Accepted
        refusal = dialog.error.text()
        assert "fever threshold (38.0 °C)" in refusal and "cannot be cleared" in refusal and "Referred" in refusal
    dialog.buttons["referred"].setChecked(True)
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted and dialog.error.text() == ""
    assert dialog.values() == ("referred", 38.0, "")

    noted = AcknowledgeDialog(PendingAlarm(2, 5, "fever", 38.6, 37.3, 12.0), fever_c=38.0)
    qtbot.addWidget(noted)
    noted.thermometer.setText("38.4")
    noted.accept()
    assert noted.result() != noted.DialogCode.Accepted
    noted.note.setText("thermometer faulty; second thermometer read 36.9")
    noted.accept()
    assert noted.result() == noted.DialogCode.Accepted
    assert noted.values() == ("cleared_secondary_check", 38.4, "thermometer faulty; second thermometer read 36.9")

    below = AcknowledgeDialog(PendingAlarm(3, 6, "elevated", 37.5, 36.3, 14.0), fever_c=38.0)
    qtbot.addWidget(below)
    below.thermometer.setText("37.1")
    below.accept()
    assert below.result() == below.DialogCode.Accepted, "a reading below the threshold clears as before"


def test_the_window_asks_with_its_own_fever_threshold(window, monkeypatch):
    from PyQt6.QtWidgets import QDialog

    from station.config import StationConfig

    win, _ = window
    asked = []

    class Spy(AcknowledgeDialog):
        def exec(self):  # no modal dialog in a test: note the threshold it was given, and cancel
            asked.append(self.fever_c)
            return QDialog.DialogCode.Rejected

    monkeypatch.setattr("ui.main_window.AcknowledgeDialog", Spy)
    win.config = StationConfig(fever_c=38.5)
    win.acknowledge(PendingAlarm(None, 9, "fever", 38.9, 37.6, 1.0))
    assert asked == [38.5]


def test_the_status_bar_shows_its_message_whole_or_in_its_tooltip(window, qtbot):
    from ui.sound import no_audio_message

    win, _ = window
    qtbot.waitUntil(lambda: win.frames_drawn > 0 and win.station is not None, timeout=30000)
    win.resize(1280, 720)
    bell = no_audio_message(ImportError("libpulse.so.0: cannot open shared object file: No such file or directory"))
    assert bell.startswith("No audio: alarms use the system bell (") and "libpulse0" in bell
    win.status_message.setText(bell)
    qtbot.wait(50)
    message = win.status_message
    assert message.shown() == bell, "at 1280 pixels the no-audio message fits whole"
    assert message.toolTip() == bell and message.text() == bell
    for field in (win.status_fps, win.status_calibration, win.status_blackbody, win.status_model):
        assert field.width() >= field.sizeHint().width(), f"{field.text()!r} is not squeezed by the message"

    long = "acknowledgement NOT logged: event store /var/lib/station.db: " + "database or disk is full; " * 12
    message.setText(long)
    qtbot.wait(50)
    assert message.shown().endswith("…") and long.startswith(message.shown()[:-1])
    assert message.fontMetrics().horizontalAdvance(message.shown()) <= message.contentsRect().width()
    assert message.toolTip() == long and message.text() == long, "the whole message is a hover away"
    narrow = len(message.shown())
    win.resize(1920, 1080)
    qtbot.wait(50)
    assert len(message.shown()) > narrow + 40, "a wider window shows more of it: the message takes the room"


def test_no_audio_falls_back_to_the_bell_and_says_so(qtbot):
    sound = AlarmSound()
    sound.play()
    sound.stop()
    if sound.backend == "beep":
        assert sound.fallback_message and "system bell" in sound.fallback_message


def test_demo_screenshot_writes_the_window(tmp_path, face_model):
    out = tmp_path / "demo.png"
    result = subprocess.run(
        [sys.executable, "-m", "station.cli.main", "demo", "--screenshot", str(out), "--after", "3", "--fast"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1280, 720)


def test_the_window_refuses_in_one_line_where_qt_would_abort():
    """Any caller of run_window (not only the command line, which asks first and screens headless) gets
    a StationError instead of Qt's abort when the platform plugin cannot start."""
    from test_qt_probe import desktop_env, free_display

    code = ("from station.errors import StationError\n"
            "from ui.app import run_window\n"
            "try:\n"
            "    run_window(None, db_path=None)\n"
            "except StationError as exc:\n"
            "    print('refused:', exc)\n")
    display = free_display()
    result = subprocess.run([sys.executable, "-c", code], env=desktop_env(DISPLAY=display, QT_QPA_PLATFORM="xcb"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("refused: the window cannot open: ") and f"display {display}" in result.stdout


def test_new_settings_reach_the_view_the_file_and_the_engine(qtbot, tmp_path, face_model):
    from station.config import StationConfig, load_config

    win = MainWindow(demo_factory(tmp_path / "s.db", fast=False), db_path=tmp_path / "s.db",
                     config_path=tmp_path / "config.toml")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.station is not None and win.worker.latest() is not None, timeout=30000)
    win.apply_settings(StationConfig(elevated_c=37.6, fever_c=38.5, palette="grey"))
    assert win.thermal_view.palette_name == "grey"
    assert win.thermal_view.isotherm_c == pytest.approx(37.6 - 1.24)
    assert load_config(tmp_path / "config.toml").fever_c == 38.5
    qtbot.waitUntil(lambda: win.station.policy.settings.fever_c == 38.5, timeout=10000)
    assert win.shutdown(wait_ms=5000)


def test_a_lost_camera_pauses_the_window_until_it_recovers(window, qtbot):
    from station.types import SystemEvent

    win, _ = window
    qtbot.waitUntil(lambda: win.worker.latest() is not None, timeout=30000)
    win.on_system_event(SystemEvent("camera_lost", 5.0, "thermal lepton: no frame for 2.0 s", stream="thermal"))
    assert "camera lost" in win.pause_reason(win.worker.latest())
    assert win.system_strip.isVisible() and "CAMERA LOST" in win.system_strip.text()
    win.on_system_event(SystemEvent("camera_recovered", 7.0, "thermal lepton: frames are flowing again",
                                    stream="thermal"))
    assert "camera lost" not in (win.pause_reason(win.worker.latest()) or "")
    assert "CAMERA LOST" not in win.system_strip.text()


def test_the_window_tracks_lost_cameras_by_stream_not_by_the_event_text(window, qtbot):
    from station.types import SystemEvent

    win, _ = window
    qtbot.waitUntil(lambda: win.worker.latest() is not None, timeout=30000)
    # a camera that never opened: the detail is the driver's sentence, its first word not the camera's name
    win.on_system_event(SystemEvent("camera_lost", 1.0, "thermal camera lepton:0 could not be opened: busy; "
                                    "see station doctor", stream="thermal"))
    win.on_system_event(SystemEvent("camera_lost", 1.5, "visible source opencv:0: no frame for 2.0 s",
                                    stream="visible"))
    assert win.lost == {"thermal", "visible"}
    assert "CAMERA LOST: thermal, visible" in win.system_strip.text()
    win.on_system_event(SystemEvent("camera_recovered", 3.0, "thermal source lepton:0: frames are flowing again",
                                    stream="thermal"))
    assert win.lost == {"visible"}, "the thermal camera is back although its two details share no first word"
    assert "camera lost: visible" in win.pause_reason(win.worker.latest())
    win.on_system_event(SystemEvent("camera_recovered", 4.0, "visible source opencv:0: frames are flowing again",
                                    stream="visible"))
    assert not win.lost and "CAMERA LOST" not in win.system_strip.text()


def test_history_reopens_from_the_log_with_thumbnails_for_alarms_only(window, qtbot):
    win, db = window
    qtbot.waitUntil(lambda: win.ended, timeout=60000)
    assert win.history.list.count() == 9
    win.shutdown()
    again = MainWindow(demo_factory(db), db_path=db)
    qtbot.addWidget(again)
    qtbot.waitUntil(lambda: again.station is not None, timeout=30000)
    items = [again.history.list.item(k) for k in range(again.history.list.count())]
    assert len(items) >= 9
    levels = {item.data(0x0100): not item.icon().isNull() for item in items}  # Qt.UserRole
    assert levels.get("fever") is True and levels.get("normal") is False
    # the demo's spectacle wearer was read on the forehead and mouth: the guard sees so, live and reopened
    assert sum(item.text().endswith("°C (glasses)") for item in items) >= 1
    assert sum(item.text().endswith("°C (glasses)") for item in items[:9]) == 1
    again.history.filter.setCurrentText("fever")
    shown = [item for item in items if not item.isHidden()]
    assert shown and all(item.data(0x0100) == "fever" for item in shown)
    again.shutdown()


def test_kiosk_mode_and_the_keyboard_shortcut(window, qtbot):
    from PyQt6.QtCore import Qt

    win, _ = window
    win.showFullScreen()
    assert win.isFullScreen()
    alarm = PendingAlarm(None, 99, "fever", 38.9, 37.6, 1.0)
    win.banner.push(alarm)
    win.activateWindow()
    with qtbot.waitSignal(win.banner.acknowledge_requested, timeout=2000) as signal:
        win.banner.acknowledge_requested.disconnect(win.acknowledge)  # no modal dialog in a test
        qtbot.keyClick(win, Qt.Key.Key_F2)
    assert signal.args == [alarm]


def test_the_status_bar_shows_the_last_blackbody_verification_and_the_calibration_age(qtbot, tmp_path, face_model):
    import json

    from station.profile import verification
    from station.types import SystemEvent

    db = tmp_path / "station.db"
    store = EventStore(db)
    detail = {"profile": "p.toml", "setpoint_c": 35.0, "reading_c": 35.04, "error_c": 0.04, "tolerance_c": 0.3}
    store.record_system_event(SystemEvent(verification.VERIFIED, 0.0, json.dumps(detail)))
    store.close()
    win = MainWindow(demo_factory(db), db_path=db)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.station is not None, timeout=30000)
    text = win.status_calibration.text()
    # The demo's profile was made the day it was recorded: 0 days old as the engine judges it, on any day.
    assert text.startswith("Calibration 0 d, verified +0.04 °C ("), text
    win.shutdown()


def test_a_storage_fault_is_shown_until_the_log_recovers(window, qtbot):
    from station.types import SystemEvent

    win, _ = window
    win.on_system_event(SystemEvent("storage_fault", 3.0, "event store: database or disk is full"))
    assert "STORAGE FAULT" in win.system_strip.text() and win.system_strip.isVisibleTo(win)
    win.on_system_event(SystemEvent("storage_recovered", 9.0, "12 rows kept in memory are now logged"))
    assert "STORAGE FAULT" not in win.system_strip.text()


def test_temperatures_show_their_interval_and_an_uncertain_alarm_asks_to_re_measure():
    from ui.alarm_banner import temperature_text

    assert temperature_text(37.94, 0.61) == "37.9 ± 0.7 °C"  # rounded up: never tighter than it is
    assert temperature_text(37.94) == "37.9 °C"
    alarm = PendingAlarm(1, 4, "elevated", 37.7, 36.4, 10.0, u95_c=0.62, uncertain=True)
    assert alarm.headline() == "ELEVATED 37.7 ± 0.7 °C — re-measure this person"
    assert PendingAlarm(2, 5, "fever", 38.9, 37.6, 11.0, u95_c=0.6).headline() == \
        "FEVER 38.9 ± 0.6 °C — check this person"


def test_an_alarm_acknowledged_at_the_desk_is_released_in_the_station_window(qtbot, tmp_path, face_model,
                                                                              fleet_broker):
    """The real path: the station's publisher receives the desk's acknowledgement over the real broker, logs
    it as the station's own row, and the window releases the alarm and says who acknowledged it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from station.fleet.protocol import BrokerUrl, DeskAck, station_topic
    from station.headless import FleetSettings

    db = tmp_path / "station.db"
    fleet = FleetSettings(BrokerUrl.parse(fleet_broker.url), "north", "st-a", fleet_broker.passwords["st-a"])

    @contextmanager
    def factory():
        with open_intake(None, None, DEMO_RECORDING, None, fast=True, status=None) as intake:
            with open_station(intake, db=db, fleet=fleet) as station:
                yield station

    win = MainWindow(factory, db_path=db)
    qtbot.addWidget(win)
    win.show()
    desk = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="desk-test", protocol=mqtt.MQTTv5)
    desk.username_pw_set("desk", fleet_broker.passwords["desk"])
    url = BrokerUrl.parse(fleet_broker.url)
    desk.connect(url.host, url.port)
    desk.loop_start()
    try:
        qtbot.waitUntil(lambda: any(a.level == "fever" for a in win.banner.pending()), timeout=60000)
        alarm = next(a for a in win.banner.pending() if a.level == "fever")
        info = desk.publish(station_topic("north", "st-a", "desk", "ack"),
                            DeskAck(alarm.screening_id, "referred", "desk-1", "nurse on the way").encode(), qos=1)
        info.wait_for_publish(10)
        qtbot.waitUntil(lambda: alarm not in win.banner.pending(), timeout=15000)
        assert f"alarm {alarm.screening_id} acknowledged at the desk by desk-1" in win.status_message.text()
        qtbot.waitUntil(lambda: win.ended, timeout=60000)
    finally:
        desk.loop_stop()
        desk.disconnect()
        win.shutdown()
    store = EventStore(db)
    try:
        rows = store.acknowledgements(alarm.screening_id)
        assert [(r["operator"], r["action"]) for r in rows] == [("desk:desk-1", "referred")]
    finally:
        store.close()
