"""From a skin reading to an alarm level, and the alarms a guard has yet to deal with.

Everything here is pure: no clock (times are passed in, on the recording's or cameras' timeline), no
files, no threads. Replays and tests therefore get the very decisions a live station would.

Levels
------
``normal``, ``elevated`` and ``fever`` for a person who was measured, ``retry`` for one who was not
(``skin_c is None``: too far, glasses, moving...). ``retry`` is not an alarm: the guard asks the person
to stand still in front of the camera again, nothing is latched and nothing feeds the baseline.

Absolute and relative mode
--------------------------
*Absolute* compares the body temperature with fixed thresholds (37.3 °C elevated, 38.0 °C fever).
*Relative* is FLIR's "Elevated Skin Temperature" (EST) screening: the station keeps a baseline, the
trimmed mean of the last ``baseline_size`` normal people, and raises its alarm at baseline +
``relative_margin_c``. It exists because skin temperature follows the room and the season: on a cold
morning everybody reads 0.5-1 °C low and a fixed threshold misses fevers, while a threshold that
follows the crowd does not. EST has one alarm level; we map it onto ours as

* ``elevated`` at baseline + margin: EST's own alarm, the part of the decision that is relative;
* ``fever`` at the absolute ``fever_c``, in both modes. A reading the absolute scale already calls a
  fever is never hidden because the baseline happens to be high (a warm hall, a run of people coming
  in from the sun): the relative mode can only *add* alarms on cold days, never remove the plain one.

Until the baseline has ``baseline_size`` samples (station just started) relative mode falls back to
the absolute thresholds, so the first people of the day are screened like any others.

What a threshold may be
-----------------------
A threshold is a claim about people, so it is bounded to what a fever screen can mean
(:func:`check_thresholds`), whatever the file or the dialog says; thresholds of 30.0 and 30.1 °C are
accepted by arithmetic but alarm on every living person.

* ``elevated_c`` within 37.0-38.5 °C body temperature. Healthy people average about 36.8 °C and
  reach 37.3 °C by day; below 37.0 a large share of them alarm, and above 38.5 °C "elevated" would
  come after the usual definition of a fever (38.0 °C).
* ``fever_c`` within 37.5-39.0 °C and above ``elevated_c``. Below 37.5 it flags ordinary variation as
  fever; above 39.0 it misses most fevers, which run at 38-39 °C.
* ``relative_margin_c`` within 0.5-2.0 °C. It is an offset above the baseline of the crowd, not a
  temperature, so it is bounded by the crowd's spread instead: body temperatures of healthy people
  spread by about 0.3-0.4 °C, so a margin under 0.5 °C alarms about one person in ten, and one over
  2.0 °C puts the relative threshold above the fever threshold on any ordinary day, where it can never
  fire. It is checked in absolute mode too: the setting takes effect the moment the mode is switched.

Hysteresis with one decision per person
---------------------------------------
Hysteresis is usually about one signal wandering around a threshold. Here every person gets exactly
one decision, so there is no per-person signal to chatter, and a rule like "after an alarm, alarm
the next person at threshold - h" would be wrong: it makes a stranger's verdict depend on who stood
in the queue before them, which is unfair, unexplainable and raises false alarms behind every
febrile visitor. So decisions of different people never influence each other's thresholds directly.
Where the same reading *can* hover at a threshold is in three places, and ``hysteresis_c`` (h) is
used in exactly those:

1. **Re-measures.** A guard who doubts an alarm asks the person to be measured again
   (:meth:`AlarmPolicy.expect_remeasure`). A reading 0.05 °C under the threshold after one 0.05 °C
   over it is noise (NETD alone is 0.05 K), not a recovery, so for the next decision within
   ``remeasure_window_s`` the thresholds at and below the alarmed level are lowered by h: the alarm
   is cleared by a re-measure only if it reads clearly (>= h) below. The station has no identities,
   so "the next decision" is assumed to be the re-measured person; if it is someone else the only
   effect is that they are judged h stricter, which errs on the safe side.
2. **The baseline's feed.** Only clean ``normal`` decisions feed the relative baseline, and only those
   at least h under the elevated threshold in effect. Borderline normals are the ones most likely to
   be a mis-read alarm, and letting them in would walk the baseline up towards them, and the
   threshold with it: the ratchet by which a slowly warming queue hides its fevers.
3. **The baseline's threshold.** The baseline in effect moves only when the freshly computed trimmed
   mean has moved at least h from it. Without that dead band the relative threshold shifts by a few
   hundredths with every person and two consecutive people with the same reading can get different
   verdicts; with it the threshold is a number the guard can read off the screen and that holds
   until the crowd has really changed.

Body temperatures are rounded to 0.01 °C before they are classified, so the value shown and logged
is the value that was judged (37.30 is elevated, never "37.30 but normal").

Latch
-----
:class:`AlarmLatch` holds raised alarms until a guard acknowledges each one; several queue in the
order they were raised, and later normal decisions never clear them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from station.errors import StationError
from station.screen.body_model import BodyModel
from station.screen.track import Verdict
from station.screen.uncertainty import combined_u95, model_u
from station.types import (  # noqa: F401  (ACK_ACTIONS, check_action: still importable from here)
    ACK_ACTIONS,
    ALARM_LEVELS,
    QUALITY_FLAGS,
    Flag,
    Level,
    ScreeningDecision,
    Site,
    _names,
    check_action,
)

AlarmMode = Literal["absolute", "relative"]
MODES: tuple[str, ...] = ("absolute", "relative")
#: The alarm levels as messages name them, in the order they always have.
_ALARM_NAMES: tuple[str, ...] = _names(lv for lv in Level if lv in ALARM_LEVELS)

# A reading within a micro-degree of a threshold is *at* it: guards against binary floating point
# turning 37.3 into 37.29999999999 on its way through arithmetic.
_EPS_C = 1e-6


#: Body temperatures (°C) a living, walking person can have: outside them a reading is a measurement fault.
#: Below 35 °C is hypothermia (nobody walks through an entrance with it unnoticed); above 42 °C, death.
PLAUSIBLE_BODY_C: tuple[float, float] = (35.0, 42.0)
#: The constant skin-to-body offset's cross-validated MAE on the FDA study (models/body-model.json's baseline).
CONSTANT_OFFSET_MAE_C = 0.275


def _cv_mae(model: BodyModel | None) -> float | None:
    """A shipped model's cross-validated MAE (°C) from its provenance, or None when it does not say."""
    if model is None:
        return None
    figures = (model.provenance or {}).get("cross_validation", {}).get("model", {})
    mae = figures.get("mae_c") if isinstance(figures, dict) else None
    return float(mae) if isinstance(mae, int | float) else None


#: Body temperatures (°C) the thresholds may take, and the margin above the baseline (see the module notes).
ELEVATED_RANGE_C: tuple[float, float] = (37.0, 38.5)
FEVER_RANGE_C: tuple[float, float] = (37.5, 39.0)
RELATIVE_MARGIN_RANGE_C: tuple[float, float] = (0.5, 2.0)


def _finite(name: str, value: float, prefix: str = "AlarmSettings.") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{prefix}{name}: expected a finite number, got {value!r}")
    return float(value)


def check_thresholds(elevated_c: float, fever_c: float, relative_margin_c: float, *, prefix: str = "") -> None:
    """Raise a one-line ValueError naming the first threshold out of what a fever screen can mean.

    The message names the key (``{prefix}elevated_c``...), the value and the range allowed, so the
    settings file, the settings dialog and the engine all report a bad threshold the same way. The
    bounds and the reasons for them are in the module notes; the defaults are well inside them.
    """
    elevated = _finite("elevated_c", elevated_c, prefix)
    fever = _finite("fever_c", fever_c, prefix)
    margin = _finite("relative_margin_c", relative_margin_c, prefix)
    for key, value, (low, high), what in (
        ("elevated_c", elevated, ELEVATED_RANGE_C, "body °C"),
        ("fever_c", fever, FEVER_RANGE_C, "body °C"),
        ("relative_margin_c", margin, RELATIVE_MARGIN_RANGE_C, "°C above the baseline"),
    ):
        if not low <= value <= high:
            raise ValueError(f"{prefix}{key}: expected {low:.1f} to {high:.1f} {what} for a fever screen, "
                             f"got {value:g}")
    if not elevated < fever:
        raise ValueError(f"{prefix}elevated_c: expected below fever_c ({fever:g}) for a fever screen, "
                         f"got {elevated:g}")


@dataclass(frozen=True)
class AlarmSettings:
    """How readings become alarm levels. All temperatures in °C.

    Parameters
    ----------
    mode
        ``"absolute"`` (fixed thresholds) or ``"relative"`` (FLIR EST style, see the module notes).
    skin_to_body_offset_c
        Body = canthus skin + this. 1.24 °C is the mean offset of the FDA facial/oral study with a FLIR
        camera; ``station body-model fit`` replaces it with a station's own.
    elevated_c, fever_c
        Body temperatures at and above which a person is ``elevated`` / ``fever``: 37.0-38.5 and
        37.5-39.0 °C, fever above elevated (:func:`check_thresholds`).
    relative_margin_c
        Relative mode: the alarm sits this far above the baseline, 0.5-2.0 °C.
    baseline_size
        Relative mode: how many recent normal people the baseline is the trimmed mean of.
    baseline_trim
        Fraction cut from *each* end before averaging (0.2 of 10 drops the 2 coolest and 2 warmest), so
        one person fresh from the cold or an undetected febrile one does not move the baseline.
    hysteresis_c
        The dead band used for re-measures and the baseline (module notes). Must stay well under the
        margin: the baseline ignores a band of this width under the threshold, and a band as wide as
        half the margin would bias it towards the coolest people.
    remeasure_window_s
        How long after a guard asks for a re-measure the next decision counts as that re-measure.
    """

    mode: AlarmMode = "absolute"
    skin_to_body_offset_c: float = 1.24
    elevated_c: float = 37.3
    fever_c: float = 38.0
    relative_margin_c: float = 1.0
    baseline_size: int = 10
    baseline_trim: float = 0.2
    hysteresis_c: float = 0.1
    remeasure_window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"AlarmSettings.mode: expected one of {MODES}, got {self.mode!r}")
        offset = _finite("skin_to_body_offset_c", self.skin_to_body_offset_c)
        if not 0.0 <= offset <= 5.0:
            raise ValueError(f"AlarmSettings.skin_to_body_offset_c: expected 0 to 5 °C, got {offset}")
        check_thresholds(self.elevated_c, self.fever_c, self.relative_margin_c, prefix="AlarmSettings.")
        margin = float(self.relative_margin_c)
        size = self.baseline_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"AlarmSettings.baseline_size: expected an integer >= 1, got {size!r}")
        trim = _finite("baseline_trim", self.baseline_trim)
        if not 0.0 <= trim < 0.5:
            raise ValueError(f"AlarmSettings.baseline_trim: expected 0 <= trim < 0.5, got {trim}")
        h = _finite("hysteresis_c", self.hysteresis_c)
        if not 0.0 <= h < margin / 2:
            raise ValueError(
                "AlarmSettings.hysteresis_c: expected 0 <= hysteresis_c < relative_margin_c / 2 "
                f"= {margin / 2}, got {h}"
            )
        window = _finite("remeasure_window_s", self.remeasure_window_s)
        if window < 0.0:
            raise ValueError(f"AlarmSettings.remeasure_window_s: expected >= 0 s, got {window}")


def body_from_skin(skin_c: float, settings: AlarmSettings) -> float:
    """Body temperature from canthus skin temperature: a constant offset (the FDA study's model)."""
    return float(skin_c) + settings.skin_to_body_offset_c


def trimmed_mean(values: Iterable[float], trim: float) -> float:
    """Mean after cutting ``floor(trim * n)`` values from each end (as ``scipy.stats.trim_mean``)."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("trimmed_mean: expected at least one value, got none")
    k = int(trim * len(ordered))
    kept = ordered[k : len(ordered) - k]
    return sum(kept) / len(kept)


def elevated_threshold(settings: AlarmSettings, baseline_c: float | None = None) -> float:
    """The body temperature at which ``elevated`` starts, given the mode and the baseline (if any)."""
    if settings.mode == "relative" and baseline_c is not None:
        return baseline_c + settings.relative_margin_c
    return settings.elevated_c


def classify(
    body_c: float,
    settings: AlarmSettings,
    baseline_c: float | None = None,
    *,
    held_level: str | None = None,
) -> str:
    """The level of one body temperature: ``normal``, ``elevated`` or ``fever``.

    Parameters
    ----------
    body_c
        Body temperature, °C.
    settings
        Thresholds and mode.
    baseline_c
        Relative mode's baseline; ``None`` (not enough people yet) falls back to absolute thresholds.
        Ignored in absolute mode.
    held_level
        The level of an alarm this reading re-measures: thresholds at and below it are lowered by
        ``hysteresis_c``, so noise alone cannot clear it (module notes).

    Thresholds are inclusive: a reading exactly at one has that level.
    """
    body = float(body_c)
    if not math.isfinite(body):
        raise ValueError(f"classify: expected a finite body temperature, got {body_c!r}")
    if held_level is not None and held_level not in ALARM_LEVELS:
        raise ValueError(f"classify.held_level: expected one of {_ALARM_NAMES} or None, got {held_level!r}")
    h = settings.hysteresis_c
    fever_at = settings.fever_c - (h if held_level == Level.FEVER else 0.0)
    elevated_at = elevated_threshold(settings, baseline_c) - (h if held_level is not None else 0.0)
    if body >= fever_at - _EPS_C:
        return Level.FEVER
    if body >= elevated_at - _EPS_C:
        return Level.ELEVATED
    return Level.NORMAL


class AlarmPolicy:
    """One decision per person: level and body temperature, keeping relative mode's baseline.

    Stateful but pure: the state is the recent normal readings and a pending re-measure, and it changes
    only through :meth:`decide`, :meth:`expect_remeasure` and :meth:`reset_baseline`, with times the
    caller supplies. The same sequence of calls always gives the same verdicts.
    """

    def __init__(self, settings: AlarmSettings | None = None, body_model: BodyModel | None = None,
                 glasses_model: BodyModel | None = None) -> None:
        self.settings = settings if settings is not None else AlarmSettings()
        #: Skin -> body temperature: a model fitted to real people (``models/body-model.json``), or, when
        #: None, the settings' constant offset. The room temperature it may use is set by the engine.
        self.body_model = body_model
        #: The same for the second site (forehead and mouth) read when glasses hide the canthi
        #: (``models/body-model-glasses.json``); None: spectacle wearers are asked to remove them.
        if glasses_model is not None and glasses_model.site != Site.FOREHEAD_MOUTH:
            raise ValueError(f"AlarmPolicy.glasses_model: expected a forehead_mouth model, got {glasses_model.site!r}")
        self.glasses_model = glasses_model
        self.ambient_c: float | None = None
        self._recent: deque[float] = deque(maxlen=self.settings.baseline_size)
        self._baseline: float | None = None
        self._remeasure: tuple[str, float] | None = None  # (level, t the guard asked)

    # ------------------------------------------------------------------ what the window shows
    @property
    def baseline_c(self) -> float | None:
        """The baseline in effect (body °C), or ``None`` until ``baseline_size`` normal people were seen.

        Kept in both modes: in absolute mode it is not used for decisions, but a baseline drifting away
        from ~36.8 °C tells the operator that the room or the calibration has moved.
        """
        return self._baseline

    @property
    def elevated_at_c(self) -> float:
        """The body temperature at which the next (ordinary) person is ``elevated``."""
        return elevated_threshold(self.settings, self._baseline)

    @property
    def baseline_samples(self) -> int:
        return len(self._recent)

    # ------------------------------------------------------------------ decisions
    def decide(self, skin_c: float | None, quality: Iterable[str], t: float,
               site: str = Site.CANTHUS) -> tuple[str, float | None]:
        """The level and body temperature for one person's final skin reading.

        Parameters
        ----------
        skin_c
            The person's skin temperature at ``site``, or ``None`` when they could not be measured.
        quality
            Quality flags of the reading (see ``station.types.QUALITY_FLAGS``). A flagged reading is
            still classified, since an alarm must never be lost to a flag, but it never feeds the baseline.
        t
            When the decision is made, seconds on the station's timeline (for the re-measure window).
        site
            Where ``skin_c`` was read: ``"canthus"``, or ``"forehead_mouth"`` for a spectacle wearer (needs
            the policy's ``glasses_model``).

        Returns
        -------
        (level, body_c)
            ``("retry", None)`` without a reading; otherwise the level and body °C rounded to 0.01.
        """
        flags = frozenset(quality)
        unknown = flags - QUALITY_FLAGS
        if unknown:
            raise ValueError(f"AlarmPolicy.decide: expected flags from {sorted(_names(QUALITY_FLAGS))}, "
                             f"got {sorted(unknown)}")
        if skin_c is None:
            return Level.RETRY, None  # a retry leaves a pending re-measure armed: the person will try again
        if isinstance(skin_c, bool) or not math.isfinite(float(skin_c)):
            raise ValueError(f"AlarmPolicy.decide: expected a finite skin temperature or None, got {skin_c!r}")
        body = round(self.body_of(float(skin_c), site), 2)
        held = self._take_remeasure(t)
        level = classify(body, self.settings, self._baseline, held_level=held)
        # Only the standard's site teaches the baseline: the second site is the less certain estimate.
        if level == Level.NORMAL and held is None and not flags and site == Site.CANTHUS:
            self._feed(body)
        return level, body

    def judge(self, skin_c: float | None, quality: Iterable[str], t: float, site: str = Site.CANTHUS,
              u_skin_c: float | None = None) -> Verdict:
        """:meth:`decide`, with the decision's uncertainty and the two rules that keep a number honest.

        * A body temperature outside what a living, walking person can have (``PLAUSIBLE_BODY_C``) is a
          measurement fault (a wrong calibration, a cold mask read as skin): ``retry`` flagged
          ``implausible``, never ``normal``.
        * The interval body +- u95 that reaches the fever threshold from below is not a quiet ``normal``:
          it is ``elevated``, flagged ``uncertain``, so the guard re-measures (an alarm, latched like any).

        ``u_skin_c`` is the skin reading's standard uncertainty (k=1); the model's residual is added here.
        """
        if skin_c is not None and math.isfinite(float(skin_c)):
            body = self.body_of(float(skin_c), site)
            low, high = PLAUSIBLE_BODY_C
            if not low <= body <= high:
                return Verdict(Level.RETRY, None, None, frozenset({Flag.IMPLAUSIBLE}))
        level, body_c = self.decide(skin_c, quality, t, site)
        if body_c is None:
            return Verdict(level, None)
        u95 = combined_u95(u_skin_c or 0.0, self.model_u(site))
        if level in (Level.NORMAL, Level.ELEVATED) and body_c + u95 >= self.settings.fever_c - _EPS_C:
            return Verdict(Level.ELEVATED, body_c, u95, frozenset({Flag.UNCERTAIN}))
        return Verdict(level, body_c, u95)

    def model_u(self, site: str = Site.CANTHUS) -> float:
        """Standard uncertainty of the skin-to-body step at ``site``: the model's cross-validated error."""
        model = self.glasses_model if site == Site.FOREHEAD_MOUTH else self.body_model
        return model_u(_cv_mae(model), CONSTANT_OFFSET_MAE_C)

    def measures(self, site: str) -> bool:
        """Whether this policy can turn a reading at ``site`` into a body temperature."""
        return site == Site.CANTHUS or (site == Site.FOREHEAD_MOUTH and self.glasses_model is not None)

    def body_of(self, skin_c: float, site: str = Site.CANTHUS) -> float:
        """Body temperature for a reading at ``site``, by that site's model."""
        if site == Site.FOREHEAD_MOUTH:
            if self.glasses_model is None:
                raise ValueError("AlarmPolicy.body_of: no model for the forehead_mouth site")
            return float(self.glasses_model.predict(skin_c, self.ambient_c))
        if site != Site.CANTHUS:
            raise ValueError(f"AlarmPolicy.body_of: expected site canthus or forehead_mouth, got {site!r}")
        if self.body_model is None:
            return body_from_skin(skin_c, self.settings)
        return float(self.body_model.predict(skin_c, self.ambient_c))

    @property
    def body_model_id(self) -> str:
        """Which skin-to-body model decides at the canthi: logged with every decision."""
        return self.model_id(Site.CANTHUS)

    def model_id(self, site: str) -> str:
        """Which skin-to-body model turns a reading at ``site`` into body temperature (for the log)."""
        if site == Site.FOREHEAD_MOUTH and self.glasses_model is not None:
            return self.glasses_model.id
        if self.body_model is None:
            return f"constant-offset+{self.settings.skin_to_body_offset_c:g}"
        return self.body_model.id

    def expect_remeasure(self, level: str, t: float) -> None:
        """A guard asked the person of an alarm at ``level`` to be measured again at time ``t``."""
        if level not in ALARM_LEVELS:
            raise ValueError(f"AlarmPolicy.expect_remeasure: expected one of {_ALARM_NAMES}, got {level!r}")
        self._remeasure = (level, float(t))

    def reset_baseline(self) -> None:
        """Forget the baseline (e.g. the entrance moved indoors); relative mode falls back until refilled.

        Also the way out when every person alarms: the baseline only learns from normal people, so a
        real step change of more than the margin (doors opened on a hot day) freezes it, and the guard's
        stream of alarms is the sign that it needs resetting.
        """
        self._recent.clear()
        self._baseline = None

    # ------------------------------------------------------------------ internals
    def _take_remeasure(self, t: float) -> str | None:
        if self._remeasure is None:
            return None
        level, asked = self._remeasure
        self._remeasure = None
        if t - asked > self.settings.remeasure_window_s:
            return None
        return level

    def _feed(self, body: float) -> None:
        s = self.settings
        if body >= self.elevated_at_c - s.hysteresis_c - _EPS_C:
            return  # borderline normal: kept out of the baseline so it cannot ratchet up
        self._recent.append(body)
        if len(self._recent) < s.baseline_size:
            return
        fresh = trimmed_mean(self._recent, s.baseline_trim)
        if self._baseline is None or abs(fresh - self._baseline) >= s.hysteresis_c - _EPS_C:
            self._baseline = fresh


# ---------------------------------------------------------------------- the latch


@dataclass(frozen=True)
class Alarm:
    """A raised alarm waiting for a guard. ``screening_id`` links it to the event store's row, if logged."""

    alarm_id: int
    track_id: int
    level: str
    t: float
    body_c: float | None
    screening_id: int | None = None


@dataclass(frozen=True)
class Acknowledgement:
    """What a guard did about one alarm, and when (station timeline)."""

    alarm: Alarm
    action: str
    t: float | None = None
    thermometer_c: float | None = None
    note: str = ""
    operator: str = ""


class AlarmLatch:
    """Raised alarms, held in the order they were raised until a guard acknowledges each.

    An alarm is a request for a person to be checked; a later normal decision (someone else) says
    nothing about that person, so only an acknowledgement removes an alarm.

    Wiring with the event store: log the decision first, then raise the alarm with the store's
    ``alarm_id`` and ``screening_id`` (from ``EventStore.screening(id)``), so the number a guard sees
    is the one in the log and :meth:`acknowledge`'s result can be written with
    ``EventStore.acknowledge(alarm.screening_id, ...)``. Without a store the latch numbers alarms itself.
    A ``re_measure`` acknowledgement should be followed by ``AlarmPolicy.expect_remeasure(level, t)``.
    """

    def __init__(self) -> None:
        self._active: dict[int, Alarm] = {}  # insertion order is raise order
        self._last_id = 0

    def raise_alarm(
        self,
        track_id: int,
        level: str,
        t: float,
        body_c: float | None,
        *,
        alarm_id: int | None = None,
        screening_id: int | None = None,
    ) -> Alarm:
        """Latch a new alarm and return it."""
        if level not in ALARM_LEVELS:
            raise ValueError(f"AlarmLatch.raise_alarm: expected a level in {_ALARM_NAMES}, got {level!r}")
        if alarm_id is None:
            alarm_id = self._last_id + 1
        elif alarm_id in self._active or alarm_id < 1:
            raise ValueError(f"AlarmLatch.raise_alarm: expected a new positive alarm id, got {alarm_id}")
        self._last_id = max(self._last_id, alarm_id)
        alarm = Alarm(alarm_id, track_id, level, float(t), body_c, screening_id)
        self._active[alarm_id] = alarm
        return alarm

    def observe(
        self, decision: ScreeningDecision, *, alarm_id: int | None = None, screening_id: int | None = None
    ) -> Alarm | None:
        """Latch ``decision`` if it is an alarm; return the :class:`Alarm`, or ``None`` for other levels."""
        if decision.level not in ALARM_LEVELS:
            return None
        return self.raise_alarm(
            decision.track_id,
            decision.level,
            decision.t_decided,
            decision.body_c,
            alarm_id=alarm_id,
            screening_id=screening_id,
        )

    def active(self) -> list[Alarm]:
        """The unacknowledged alarms, oldest first: the order the people stood in."""
        return list(self._active.values())

    def acknowledge(
        self,
        alarm_id: int,
        action: str,
        *,
        t: float | None = None,
        thermometer_c: float | None = None,
        note: str = "",
        operator: str = "",
    ) -> Acknowledgement:
        """Release one alarm with what the guard did. Unknown or already released ids are refused."""
        check_action(action, thermometer_c)
        alarm = self._active.get(alarm_id)
        if alarm is None:
            raise StationError(f"alarm {alarm_id} is not active (never raised or already acknowledged)")
        del self._active[alarm_id]
        return Acknowledgement(alarm, action, t, thermometer_c, note, operator)

    def __len__(self) -> int:
        return len(self._active)


__all__ = [
    "ACK_ACTIONS",
    "ALARM_LEVELS",
    "Acknowledgement",
    "Alarm",
    "AlarmLatch",
    "AlarmPolicy",
    "AlarmSettings",
    "body_from_skin",
    "check_action",
    "classify",
    "elevated_threshold",
    "trimmed_mean",
]
