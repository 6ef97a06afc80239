"""Alarm policy: thresholds at their boundaries, retry, relative baseline, hysteresis, and the latch."""

from __future__ import annotations

import math

import pytest

from station.errors import StationError
from station.screen.alarm import (
    Alarm,
    AlarmLatch,
    AlarmPolicy,
    AlarmSettings,
    body_from_skin,
    classify,
    trimmed_mean,
)
from station.types import ScreeningDecision

OFFSET = 1.24
RELATIVE = AlarmSettings(mode="relative", baseline_size=5, baseline_trim=0.2)


def skin(body: float) -> float:
    """The skin reading that becomes ``body`` with the default offset."""
    return body - OFFSET


def fill_baseline(policy: AlarmPolicy, bodies: list[float], t0: float = 0.0) -> None:
    for i, body in enumerate(bodies):
        level, _ = policy.decide(skin(body), (), t0 + i)
        assert level == "normal"


# ---------------------------------------------------------------------- settings


def test_default_settings() -> None:
    s = AlarmSettings()
    assert (s.mode, s.skin_to_body_offset_c, s.elevated_c, s.fever_c) == ("absolute", 1.24, 37.3, 38.0)
    assert (s.relative_margin_c, s.baseline_size, s.baseline_trim, s.hysteresis_c) == (1.0, 10, 0.2, 0.1)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"mode": "est"}, "AlarmSettings.mode: expected one of ('absolute', 'relative'), got 'est'"),
        ({"elevated_c": 38.5}, "AlarmSettings.elevated_c: expected below fever_c (38) for a fever screen, got 38.5"),
        ({"fever_c": 311.15}, "AlarmSettings.fever_c: expected 37.5 to 39.0 body °C for a fever screen, got 311.15"),
        ({"elevated_c": float("nan")}, "AlarmSettings.elevated_c: expected a finite number, got nan"),
        ({"skin_to_body_offset_c": -1.0}, "skin_to_body_offset_c: expected 0 to 5"),
        ({"relative_margin_c": 0.0}, "relative_margin_c: expected 0.5 to 2.0 °C above the baseline"),
        ({"baseline_size": 0}, "baseline_size: expected an integer >= 1, got 0"),
        ({"baseline_size": 2.5}, "baseline_size: expected an integer >= 1, got 2.5"),
        ({"baseline_trim": 0.5}, "baseline_trim: expected 0 <= trim < 0.5, got 0.5"),
        ({"hysteresis_c": -0.1}, "hysteresis_c: expected 0 <= hysteresis_c"),
        ({"hysteresis_c": 0.6}, "hysteresis_c: expected 0 <= hysteresis_c < relative_margin_c / 2"),
        ({"remeasure_window_s": -1.0}, "remeasure_window_s: expected >= 0"),
    ],
)
def test_settings_are_validated(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        AlarmSettings(**kwargs)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # issue 13: 30.0 / 30.1 passed the old 30-45 °C bounds and alarmed on everybody
        ({"elevated_c": 30.0, "fever_c": 30.1},
         "AlarmSettings.elevated_c: expected 37.0 to 38.5 body °C for a fever screen, got 30"),
        ({"elevated_c": 36.9}, "AlarmSettings.elevated_c: expected 37.0 to 38.5 body °C for a fever screen, got 36.9"),
        ({"elevated_c": 38.6, "fever_c": 39.0},
         "AlarmSettings.elevated_c: expected 37.0 to 38.5 body °C for a fever screen, got 38.6"),
        ({"elevated_c": 37.0, "fever_c": 37.4},
         "AlarmSettings.fever_c: expected 37.5 to 39.0 body °C for a fever screen, got 37.4"),
        ({"fever_c": 40.0}, "AlarmSettings.fever_c: expected 37.5 to 39.0 body °C for a fever screen, got 40"),
        ({"elevated_c": 38.0, "fever_c": 38.0},
         "AlarmSettings.elevated_c: expected below fever_c (38) for a fever screen, got 38"),
        # relative mode: the margin is an offset above the crowd's baseline, bounded as one
        ({"mode": "relative", "relative_margin_c": 0.2},
         "AlarmSettings.relative_margin_c: expected 0.5 to 2.0 °C above the baseline for a fever screen, got 0.2"),
        ({"mode": "relative", "relative_margin_c": 2.5},
         "AlarmSettings.relative_margin_c: expected 0.5 to 2.0 °C above the baseline for a fever screen, got 2.5"),
    ],
)
def test_thresholds_are_bounded_to_what_a_fever_screen_can_mean(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        AlarmSettings(**kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"elevated_c": 37.0, "fever_c": 37.5}, {"elevated_c": 38.5, "fever_c": 39.0},
     {"mode": "relative", "relative_margin_c": 0.5}, {"mode": "relative", "relative_margin_c": 2.0}],
)
def test_the_defaults_and_the_bounds_themselves_are_accepted(kwargs: dict) -> None:
    AlarmSettings(**kwargs)


def test_body_from_skin_adds_the_offset() -> None:
    assert body_from_skin(36.0, AlarmSettings()) == pytest.approx(37.24)
    assert body_from_skin(36.0, AlarmSettings(skin_to_body_offset_c=2.0)) == pytest.approx(38.0)


# ---------------------------------------------------------------------- absolute thresholds


@pytest.mark.parametrize(
    ("body", "level"),
    [(36.8, "normal"), (37.29, "normal"), (37.3, "elevated"), (37.99, "elevated"), (38.0, "fever"), (41.0, "fever")],
)
def test_absolute_thresholds_are_inclusive(body: float, level: str) -> None:
    assert classify(body, AlarmSettings()) == level


@pytest.mark.parametrize(
    ("skin_c", "level", "body"),
    [(36.05, "normal", 37.29), (36.06, "elevated", 37.3), (36.75, "elevated", 37.99), (36.76, "fever", 38.0)],
)
def test_decide_judges_the_rounded_body_temperature_it_reports(skin_c: float, level: str, body: float) -> None:
    # 36.06 + 1.24 is 37.300000000000004 in binary and 36.76 + 1.24 is 37.99999999999999: the value
    # printed (2 decimals) must be the value judged, both ways.
    assert AlarmPolicy().decide(skin_c, (), 0.0) == (level, body)


def test_absolute_mode_ignores_a_baseline() -> None:
    assert classify(37.0, AlarmSettings(), baseline_c=35.0) == "normal"


# ---------------------------------------------------------------------- retry


def test_no_reading_is_a_retry_without_body_temperature() -> None:
    policy = AlarmPolicy(RELATIVE)
    assert policy.decide(None, {"too_far"}, 1.0) == ("retry", None)
    assert policy.decide(None, frozenset(), 2.0) == ("retry", None)
    assert policy.baseline_samples == 0


def test_decide_refuses_unknown_flags_and_non_finite_readings() -> None:
    policy = AlarmPolicy()
    with pytest.raises(ValueError, match="expected flags from .* got \\['sunburn'\\]"):
        policy.decide(36.0, {"sunburn"}, 0.0)
    with pytest.raises(ValueError, match="expected a finite skin temperature or None, got nan"):
        policy.decide(float("nan"), (), 0.0)


def test_flagged_reading_is_classified_but_never_feeds_the_baseline() -> None:
    policy = AlarmPolicy(RELATIVE)
    assert policy.decide(skin(38.5), {"glasses"}, 0.0) == ("fever", 38.5)
    assert policy.decide(skin(36.8), {"glasses"}, 1.0) == ("normal", 36.8)
    assert policy.baseline_samples == 0


# ---------------------------------------------------------------------- relative mode


def test_trimmed_mean_cuts_each_end() -> None:
    assert trimmed_mean(range(1, 11), 0.2) == pytest.approx(5.5)  # drops 1, 2 and 9, 10
    assert trimmed_mean([36.8, 36.9, 37.0, 36.7, 30.0], 0.2) == pytest.approx(36.8)  # the cold outlier goes
    assert trimmed_mean([36.5], 0.2) == 36.5
    with pytest.raises(ValueError, match="expected at least one value"):
        trimmed_mean([], 0.2)


def test_relative_mode_falls_back_to_absolute_until_the_baseline_is_full() -> None:
    policy = AlarmPolicy(RELATIVE)
    fill_baseline(policy, [36.0, 36.1, 36.0, 35.9])  # a cold morning: 4 of 5 samples
    assert policy.baseline_c is None
    assert policy.elevated_at_c == 37.3
    assert policy.decide(skin(37.2), (), 10.0) == ("normal", 37.2)  # absolute: 37.2 is normal


def test_relative_baseline_is_the_trimmed_mean_of_the_last_normal_people() -> None:
    policy = AlarmPolicy(RELATIVE)
    fill_baseline(policy, [36.0, 36.1, 35.2, 36.0, 36.2])
    assert policy.baseline_c == pytest.approx((36.0 + 36.0 + 36.1) / 3)  # 35.2 and 36.2 trimmed
    assert policy.elevated_at_c == pytest.approx(37.0333, abs=1e-4)
    # On this cold morning 37.1 is an alarm, although the absolute scale calls it normal.
    assert policy.decide(skin(37.1), (), 10.0) == ("elevated", 37.1)
    assert classify(37.1, AlarmSettings()) == "normal"


def test_relative_mode_never_hides_an_absolute_fever() -> None:
    policy = AlarmPolicy(RELATIVE)
    fill_baseline(policy, [37.1, 37.15, 37.1, 37.15, 37.1])  # a warm hall: threshold ~38.12
    assert policy.elevated_at_c == pytest.approx(38.1167, abs=1e-4)
    assert policy.decide(skin(38.0), (), 10.0) == ("fever", 38.0)
    assert policy.decide(skin(37.9), (), 11.0) == ("normal", 37.9)


def test_classify_relative_with_and_without_baseline() -> None:
    settings = AlarmSettings(mode="relative")
    assert classify(37.0, settings, baseline_c=36.0) == "elevated"  # exactly baseline + margin
    assert classify(36.99, settings, baseline_c=36.0) == "normal"
    assert classify(37.3, settings, baseline_c=None) == "elevated"  # fallback to absolute
    assert classify(38.0, settings, baseline_c=37.5) == "fever"


def test_only_normal_decisions_feed_the_baseline() -> None:
    policy = AlarmPolicy(RELATIVE)
    fill_baseline(policy, [36.0] * 5)
    assert policy.baseline_c == pytest.approx(36.0)
    for i in range(10):  # a run of alarms must not drag the threshold up after itself
        assert policy.decide(skin(37.6), (), 10.0 + i)[0] == "elevated"
    assert policy.baseline_c == pytest.approx(36.0)
    assert policy.decide(None, {"motion"}, 30.0)[0] == "retry"
    assert policy.baseline_c == pytest.approx(36.0)


def test_baseline_follows_the_crowd_over_the_last_n_only() -> None:
    policy = AlarmPolicy(RELATIVE)
    fill_baseline(policy, [36.0] * 5)
    fill_baseline(policy, [36.5] * 5, t0=10.0)  # the hall warms up: the old samples leave the window
    assert policy.baseline_c == pytest.approx(36.5)
    assert policy.baseline_samples == 5


def test_borderline_normals_do_not_feed_the_baseline() -> None:
    policy = AlarmPolicy(RELATIVE)
    fill_baseline(policy, [36.0] * 5)  # threshold 37.0, hysteresis 0.1
    assert policy.decide(skin(36.95), (), 10.0) == ("normal", 36.95)  # within h under the threshold
    assert policy.decide(skin(36.91), (), 11.0) == ("normal", 36.91)
    assert list(policy._recent) == [36.0] * 5
    assert policy.decide(skin(36.89), (), 12.0) == ("normal", 36.89)  # clear of the band: fed
    assert list(policy._recent)[-1] == 36.89


def test_baseline_moves_only_past_the_dead_band() -> None:
    policy = AlarmPolicy(AlarmSettings(mode="relative", baseline_size=5, baseline_trim=0.0))
    fill_baseline(policy, [36.0] * 5)
    fill_baseline(policy, [36.4], t0=10.0)  # fresh mean 36.08: under 0.1 from 36.0
    assert policy.baseline_c == pytest.approx(36.0)
    fill_baseline(policy, [36.4], t0=11.0)  # fresh mean 36.16: moved >= 0.1, taken
    assert policy.baseline_c == pytest.approx(36.16)


def test_reset_baseline_falls_back_to_absolute() -> None:
    policy = AlarmPolicy(RELATIVE)
    fill_baseline(policy, [36.0] * 5)
    policy.reset_baseline()
    assert policy.baseline_c is None and policy.baseline_samples == 0
    assert policy.decide(skin(37.1), (), 10.0)[0] == "normal"


def test_absolute_mode_keeps_a_baseline_for_display_only() -> None:
    policy = AlarmPolicy(AlarmSettings(baseline_size=3))
    fill_baseline(policy, [36.0, 36.0, 36.0])
    assert policy.baseline_c == pytest.approx(36.0)
    assert policy.decide(skin(37.1), (), 10.0)[0] == "normal"


# ---------------------------------------------------------------------- hysteresis


def test_consecutive_people_are_judged_independently() -> None:
    policy = AlarmPolicy()
    assert policy.decide(skin(38.4), (), 0.0)[0] == "fever"
    assert policy.decide(skin(37.25), (), 1.0)[0] == "normal"  # no threshold carried over to a stranger


def test_a_remeasure_clears_an_alarm_only_clearly_below_its_threshold() -> None:
    policy = AlarmPolicy()
    assert policy.decide(skin(37.35), (), 0.0) == ("elevated", 37.35)
    policy.expect_remeasure("elevated", 5.0)
    assert policy.decide(None, {"motion"}, 6.0) == ("retry", None)  # a failed try keeps it armed
    assert policy.decide(skin(37.25), (), 8.0) == ("elevated", 37.25)  # within h: noise, not recovery
    assert policy.decide(skin(37.25), (), 9.0) == ("normal", 37.25)  # used once; next person is plain

    policy.expect_remeasure("elevated", 20.0)
    assert policy.decide(skin(37.19), (), 25.0) == ("normal", 37.19)  # clearly below: cleared


def test_a_remeasured_fever_steps_down_one_level_only_clearly() -> None:
    policy = AlarmPolicy()
    policy.expect_remeasure("fever", 0.0)
    assert policy.decide(skin(37.95), (), 1.0)[0] == "fever"
    policy.expect_remeasure("fever", 2.0)
    assert policy.decide(skin(37.85), (), 3.0)[0] == "elevated"
    policy.expect_remeasure("fever", 4.0)
    assert policy.decide(skin(37.22), (), 5.0)[0] == "elevated"  # elevated threshold is lowered too


def test_remeasure_expires_and_never_feeds_the_baseline() -> None:
    policy = AlarmPolicy(AlarmSettings(remeasure_window_s=30.0, baseline_size=3))
    policy.expect_remeasure("elevated", 0.0)
    assert policy.decide(skin(37.25), (), 31.0)[0] == "normal"  # too late to be that person
    assert policy.decide(skin(36.6), (), 32.0)[0] == "normal"
    policy.expect_remeasure("elevated", 40.0)
    assert policy.decide(skin(36.5), (), 41.0)[0] == "normal"
    assert policy.baseline_samples == 1  # only the plain 36.6 was fed (37.25 is borderline)


def test_held_level_in_classify_and_bad_levels() -> None:
    assert classify(37.2, AlarmSettings(), held_level="elevated") == "elevated"
    assert classify(37.19, AlarmSettings(), held_level="elevated") == "normal"
    with pytest.raises(ValueError, match="held_level: expected one of"):
        classify(37.0, AlarmSettings(), held_level="normal")
    with pytest.raises(ValueError, match="expect_remeasure: expected one of"):
        AlarmPolicy().expect_remeasure("retry", 0.0)


# ---------------------------------------------------------------------- latch


def decision(track_id: int, level: str, t: float, body: float | None = 37.5) -> ScreeningDecision:
    skin_c = None if body is None else body - OFFSET
    return ScreeningDecision(track_id, t - 1.0, t, skin_c, body, level)


def test_latch_queues_alarms_in_order_and_survives_normal_decisions() -> None:
    latch = AlarmLatch()
    first = latch.observe(decision(1, "elevated", 10.0, 37.5))
    second = latch.observe(decision(2, "fever", 12.0, 38.6))
    assert latch.observe(decision(3, "normal", 13.0, 36.9)) is None
    assert latch.observe(decision(4, "retry", 14.0, None)) is None
    third = latch.observe(decision(5, "elevated", 15.0, 37.4))
    assert [a.alarm_id for a in latch.active()] == [1, 2, 3]
    assert first == Alarm(1, 1, "elevated", 10.0, 37.5)
    assert (second.level, second.body_c, third.track_id) == ("fever", 38.6, 5)
    assert len(latch) == 3


def test_acknowledge_releases_one_alarm_and_records_what_was_done() -> None:
    latch = AlarmLatch()
    for i, level in enumerate(["elevated", "fever", "elevated"]):
        latch.raise_alarm(i, level, float(i), 38.1)
    ack = latch.acknowledge(2, "cleared_secondary_check", t=9.0, thermometer_c=36.9, note="ear", operator="guard-2")
    assert ack.alarm.alarm_id == 2 and ack.action == "cleared_secondary_check"
    assert (ack.t, ack.thermometer_c, ack.note, ack.operator) == (9.0, 36.9, "ear", "guard-2")
    assert [a.alarm_id for a in latch.active()] == [1, 3]
    latch.acknowledge(1, "re_measure")
    latch.acknowledge(3, "referred")
    assert latch.active() == []


def test_acknowledge_refuses_unknown_alarms_actions_and_readings() -> None:
    latch = AlarmLatch()
    latch.raise_alarm(7, "fever", 1.0, 38.5)
    with pytest.raises(StationError, match="alarm 9 is not active"):
        latch.acknowledge(9, "referred")
    with pytest.raises(StationError, match="expected one of cleared_secondary_check, referred, re_measure, got 'ok'"):
        latch.acknowledge(1, "ok")
    with pytest.raises(StationError, match="thermometer reading: expected 30 to 45 °C, got 98.6"):
        latch.acknowledge(1, "cleared_secondary_check", thermometer_c=98.6)
    assert len(latch) == 1  # refused acknowledgements change nothing
    latch.acknowledge(1, "referred")
    with pytest.raises(StationError, match="alarm 1 is not active"):
        latch.acknowledge(1, "referred")


def test_latch_takes_the_stores_alarm_numbers() -> None:
    latch = AlarmLatch()
    alarm = latch.observe(decision(1, "fever", 3.0, 38.4), alarm_id=41, screening_id=120)
    assert (alarm.alarm_id, alarm.screening_id) == (41, 120)
    assert latch.raise_alarm(2, "elevated", 4.0, 37.6).alarm_id == 42  # own numbering continues after
    with pytest.raises(ValueError, match="expected a new positive alarm id, got 41"):
        latch.raise_alarm(3, "elevated", 5.0, 37.6, alarm_id=41)
    with pytest.raises(ValueError, match="expected a level in"):
        latch.raise_alarm(3, "normal", 5.0, 36.6)


def test_policy_and_latch_together_for_a_remeasure() -> None:
    policy, latch = AlarmPolicy(), AlarmLatch()
    level, body = policy.decide(skin(37.32), (), 1.0)
    alarm = latch.raise_alarm(4, level, 1.0, body)
    ack = latch.acknowledge(alarm.alarm_id, "re_measure", t=3.0)
    policy.expect_remeasure(ack.alarm.level, ack.t)
    level, body = policy.decide(skin(37.28), (), 6.0)
    assert level == "elevated"  # the hovering reading re-alarms instead of clearing by noise
    assert latch.observe(decision(5, level, 6.0, body)).alarm_id == 2


# ------------------------------------------------------------------ the second site, for spectacle wearers
def test_a_forehead_mouth_reading_uses_its_own_model_and_never_teaches_the_baseline() -> None:
    from station.screen.body_model import load_glasses_model, load_model

    glasses = load_glasses_model()
    policy = AlarmPolicy(RELATIVE, load_model(), glasses)
    assert policy.measures("canthus") and policy.measures("forehead_mouth")
    policy.ambient_c = 24.0
    level, body = policy.decide(35.9, (), 0.0, site="forehead_mouth")
    assert body == pytest.approx(round(glasses.predict(35.9, 24.0), 2)) and level == "normal"
    assert policy.baseline_samples == 0, "the less certain site does not move the baseline"
    assert policy.model_id("forehead_mouth") == glasses.id and policy.model_id("canthus") == load_model().id
    policy.decide(35.4, (), 1.0)
    assert policy.baseline_samples == 1


def test_without_a_glasses_model_the_second_site_is_not_measured() -> None:
    from station.screen.body_model import load_model

    policy = AlarmPolicy(AlarmSettings(), load_model())
    assert not policy.measures("forehead_mouth")
    with pytest.raises(ValueError, match="forehead_mouth"):
        policy.decide(35.9, (), 0.0, site="forehead_mouth")
    with pytest.raises(ValueError, match="forehead_mouth model"):
        AlarmPolicy(AlarmSettings(), load_model(), load_model())


# ---------------------------------------------------------------------- uncertainty and plausibility
def test_every_measured_verdict_carries_its_interval_with_the_models_residual():
    from station.screen.body_model import load_model

    policy = AlarmPolicy(AlarmSettings(), body_model=load_model())
    verdict = policy.judge(35.3, frozenset(), 1.0, "canthus", u_skin_c=0.1)
    assert verdict.level == "normal" and verdict.u95_c is not None
    # the shipped model's cross-validated MAE (0.2415 °C) is 0.303 °C standard: 2 x hypot(0.303, 0.1) = 0.64
    assert verdict.u95_c == pytest.approx(2 * math.hypot(0.2415 * math.sqrt(math.pi / 2), 0.1), abs=0.011)
    assert policy.judge(35.3, frozenset(), 1.0, "canthus", u_skin_c=0.3).u95_c > verdict.u95_c


def test_an_interval_reaching_the_fever_threshold_is_an_alarm_to_re_measure():
    """37.6 +- 0.6 could be 38.2: never a quiet normal or a plain elevated, a re-measure."""
    policy = AlarmPolicy(AlarmSettings(elevated_c=37.8, fever_c=38.0))
    skin = 37.6 - AlarmSettings().skin_to_body_offset_c
    verdict = policy.judge(skin, frozenset(), 1.0, u_skin_c=0.1)
    assert verdict.level == "elevated" and "uncertain" in verdict.flags
    far_below = policy.judge(36.9 - AlarmSettings().skin_to_body_offset_c, frozenset(), 2.0, u_skin_c=0.1)
    assert far_below.level == "normal" and not far_below.flags


@pytest.mark.parametrize("body_c", [33.05, 34.9, 42.5])
def test_a_body_temperature_nobody_walking_has_is_a_measurement_fault(body_c):
    """The uncorrected kiosk read 33.05 °C 'normal': outside 35-42 °C it is never a level, only a retry."""
    policy = AlarmPolicy(AlarmSettings())
    verdict = policy.judge(body_c - AlarmSettings().skin_to_body_offset_c, frozenset(), 1.0, u_skin_c=0.1)
    assert verdict == ("retry", None, None, frozenset({"implausible"}))
    assert policy.baseline_samples == 0  # and it teaches the baseline nothing
