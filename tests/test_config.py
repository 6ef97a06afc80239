"""The station's settings file and the technician PIN, and the settings dialog that guards it."""

from __future__ import annotations

import stat

import pytest

from station.config import StationConfig, check_pin, default_config_path, hash_pin, load_config, save_config
from station.errors import StationError
from ui.settings_dialog import SettingsDialog


def test_settings_round_trip_privately(tmp_path):
    path = tmp_path / "fever-station" / "config.toml"
    config = StationConfig(elevated_c=37.5, fever_c=38.2, palette="grey", volume=0.3,
                           guidance={"too_far": "Acérquese"}, pin_hash=hash_pin("2468"))
    save_config(config, path)
    loaded = load_config(path)
    assert loaded.elevated_c == 37.5 and loaded.palette == "grey" and loaded.guidance["too_far"] == "Acérquese"
    assert loaded.guidance["glasses"] == "Remove glasses", "unset strings keep their defaults"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert loaded.to_alarm_settings().fever_c == 38.2


def test_a_missing_file_means_defaults_and_the_default_path_follows_xdg(tmp_path, private_station_dirs):
    assert load_config(tmp_path / "nope.toml") == StationConfig()
    assert default_config_path() == private_station_dirs / "config" / "fever-station" / "config.toml"


@pytest.mark.parametrize(
    ("text", "key"),
    [('palette = "plasma"', "palette"), ("elevated_c = 39.0\nfever_c = 38.0", "elevated_c"),
     ('volume = "loud"', "volume"), ("thresholds = 1", "thresholds"), ("volume = 3.0", "volume")],
)
def test_a_bad_setting_names_its_key(tmp_path, text, key):
    path = tmp_path / "config.toml"
    path.write_text(text + "\n")
    with pytest.raises(StationError, match=key):
        load_config(path)


def test_the_pin_is_stored_salted_and_checked_in_constant_time():
    first, second = hash_pin("1234"), hash_pin("1234")
    assert first != second and "1234" not in first
    assert check_pin("1234", first) and check_pin("1234", second)
    assert not check_pin("1235", first)
    assert not check_pin("1234", None) and not check_pin("1234", "garbage")
    with pytest.raises(StationError, match="4 to 12 digits"):
        hash_pin("12a")


def test_a_guard_without_the_pin_cannot_change_thresholds(qtbot):
    config = StationConfig(pin_hash=hash_pin("9090"))
    dialog = SettingsDialog(config)
    qtbot.addWidget(dialog)
    dialog.pin.setText("1111")
    dialog.accept()
    assert not dialog.unlocked and "Wrong PIN" in dialog.error.text()
    dialog.elevated.setValue(39.0)  # whatever the page holds, a locked dialog returns the old settings
    assert dialog.result_config() == config


def test_a_technician_sets_the_first_pin_then_changes_thresholds(qtbot):
    dialog = SettingsDialog(StationConfig())
    qtbot.addWidget(dialog)
    dialog.pin.setText("4321")
    dialog.pin_again.setText("4321")
    dialog.accept()
    assert dialog.unlocked
    dialog.elevated.setValue(37.6)
    dialog.fever.setValue(38.4)
    dialog.palette.setCurrentText("rainbow")
    dialog.accept()
    result = dialog.result_config()
    assert result.elevated_c == pytest.approx(37.6) and result.palette == "rainbow"
    assert check_pin("4321", result.pin_hash)


def test_glasses_model_default_none_or_a_file(tmp_path):
    from station.body_model import DEFAULT_GLASSES_MODEL_PATH, DEFAULT_MODEL_PATH, load_glasses_model
    from station.config import StationConfig

    assert StationConfig().alarm_policy().glasses_model.id == load_glasses_model().id
    assert StationConfig(glasses_model="none").alarm_policy().glasses_model is None
    assert StationConfig(glasses_model=str(DEFAULT_GLASSES_MODEL_PATH)).alarm_policy().measures("forehead_mouth")
    with pytest.raises(StationError, match="site"):
        StationConfig(glasses_model=str(DEFAULT_MODEL_PATH)).alarm_policy()
