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
    from station.config import StationConfig
    from station.screen.body_model import DEFAULT_GLASSES_MODEL_PATH, DEFAULT_MODEL_PATH, load_glasses_model

    assert StationConfig().alarm_policy().glasses_model.id == load_glasses_model().id
    assert StationConfig(glasses_model="none").alarm_policy().glasses_model is None
    assert StationConfig(glasses_model=str(DEFAULT_GLASSES_MODEL_PATH)).alarm_policy().measures("forehead_mouth")
    with pytest.raises(StationError, match="site"):
        StationConfig(glasses_model=str(DEFAULT_MODEL_PATH)).alarm_policy()


# ------------------------------------------------------------------ thresholds a fever screen can mean (issue 13)
@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("elevated_c = 30.0\nfever_c = 30.1", "elevated_c: expected 37.0 to 38.5 body °C for a fever screen, got 30"),
        ("fever_c = 39.5", "fever_c: expected 37.5 to 39.0 body °C for a fever screen, got 39.5"),
        ("elevated_c = 38.2\nfever_c = 38.1", "elevated_c: expected below fever_c (38.1) for a fever screen, got 38.2"),
        ('mode = "relative"\nrelative_margin_c = 0.1',
         "relative_margin_c: expected 0.5 to 2.0 °C above the baseline for a fever screen, got 0.1"),
        ("relative_margin_c = 3.0",  # absolute mode too: it takes effect the moment the mode is switched
         "relative_margin_c: expected 0.5 to 2.0 °C above the baseline for a fever screen, got 3"),
    ],
)
def test_thresholds_outside_a_fever_screen_are_refused_in_one_line(tmp_path, text, line):
    path = tmp_path / "config.toml"
    path.write_text(text + "\n")
    with pytest.raises(StationError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {line}"


def test_the_default_settings_are_valid_and_saving_checks_the_thresholds(tmp_path):
    StationConfig().check()
    StationConfig(mode="relative").check()
    with pytest.raises(StationError, match=r"^.*config\.toml: fever_c: expected 37\.5 to 39\.0 body °C.*got 37\.45$"):
        save_config(StationConfig(elevated_c=37.0, fever_c=37.45), tmp_path / "config.toml")
    assert not (tmp_path / "config.toml").exists()


def test_the_settings_dialog_refuses_thresholds_that_alarm_on_everybody(qtbot):
    dialog = SettingsDialog(StationConfig(pin_hash=hash_pin("4321")))
    qtbot.addWidget(dialog)
    dialog.pin.setText("4321")
    dialog.accept()
    dialog.elevated.setValue(36.0)
    dialog.fever.setValue(36.1)
    dialog.accept()
    assert dialog.result() != dialog.DialogCode.Accepted
    assert dialog.error.text() == "settings: elevated_c: expected 37.0 to 38.5 body °C for a fever screen, got 36"


# ------------------------------------------------------------------ retention keys (issue 13, station/log/retention.py)
def test_retention_out_of_bounds_is_a_config_error_naming_the_key(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("retention_images_days = 0.0\n")
    with pytest.raises(StationError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: retention_images_days: ")
    with pytest.raises(StationError) as info:  # building the policy from settings made in code says the same
        StationConfig(retention_images_days=0.0).retention_policy()
    assert str(info.value).startswith("settings: retention_images_days: ") and "\n" not in str(info.value)


def test_a_station_error_from_the_retention_policy_is_said_as_a_config_error(tmp_path, monkeypatch):
    """RetentionPolicy may refuse with its own StationError (a minimum): the config names the file's key."""
    import station.config as config_module

    class Strict:
        def __init__(self, images_days, records_days):
            if records_days < 30:
                raise StationError(f"records_days: expected at least 30 days, got {records_days:g}")

    monkeypatch.setattr(config_module, "RetentionPolicy", Strict)
    path = tmp_path / "config.toml"
    path.write_text("retention_images_days = 1.0\nretention_records_days = 2.0\n")
    with pytest.raises(StationError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: retention_records_days: expected at least 30 days, got 2"
