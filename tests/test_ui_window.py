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

from station.cli import DEMO_RECORDING
from station.guidance import guidance_for
from station.headless import open_station
from station.intake import open_intake
from station.store import EventStore
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


def test_no_audio_falls_back_to_the_bell_and_says_so(qtbot):
    sound = AlarmSound()
    sound.play()
    sound.stop()
    if sound.backend == "beep":
        assert sound.fallback_message and "system bell" in sound.fallback_message


def test_demo_screenshot_writes_the_window(tmp_path, face_model):
    out = tmp_path / "demo.png"
    result = subprocess.run(
        [sys.executable, "-m", "station.cli", "demo", "--screenshot", str(out), "--after", "3", "--fast"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1280, 720)


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
    win.on_system_event(SystemEvent("camera_lost", 5.0, "thermal lepton: no frame for 2.0 s"))
    assert "camera lost" in win.pause_reason(win.worker.latest())
    assert win.system_strip.isVisible() and "CAMERA LOST" in win.system_strip.text()
    win.on_system_event(SystemEvent("camera_recovered", 7.0, "thermal lepton: frames are flowing again"))
    assert "camera lost" not in (win.pause_reason(win.worker.latest()) or "")
    assert "CAMERA LOST" not in win.system_strip.text()


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

    from station import verification
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
    assert text.startswith("Calibration ") and " d, verified +0.04 °C (" in text
    win.shutdown()


def test_a_storage_fault_is_shown_until_the_log_recovers(window, qtbot):
    from station.types import SystemEvent

    win, _ = window
    win.on_system_event(SystemEvent("storage_fault", 3.0, "event store: database or disk is full"))
    assert "STORAGE FAULT" in win.system_strip.text() and win.system_strip.isVisibleTo(win)
    win.on_system_event(SystemEvent("storage_recovered", 9.0, "12 rows kept in memory are now logged"))
    assert "STORAGE FAULT" not in win.system_strip.text()
