"""The screening pipeline: frame pairs in, one decision per person out, as a plain generator.

``Station.run()`` yields a :class:`Tick` per frame pair (and system events as they happen), so tests
drive it with ``next()``, the headless command prints from it, and the window will wrap it in a worker
thread. It owns no threads itself: capture threads live in the intake.

One frame pair goes: faces in the visible frame -> thermal frame to °C (gain/offset, blackbody
correction and health) -> each face mapped onto the thermal image at its own distance -> canthus
readings with quality flags -> tracks -> decisions (alarm policy) -> event store.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from station.acquire.intake import Intake, live_wall_time
from station.acquire.radiometry import Radiometer, estimate_reflected_c
from station.errors import StationError
from station.log.guarded import GuardedLog
from station.log.retention import RetentionPolicy, RetentionSchedule
from station.log.store import EventStore
from station.profile.registration import distance_from_eyes, map_faces
from station.profile.schema import MAX_CALIBRATION_AGE_DAYS, CalibrationProfile, check_profile_fits
from station.screen.alarm import AlarmPolicy
from station.screen.detect import FaceDetector
from station.screen.measure import ROI_SIDE, MeasureSettings, block_mean, read_skin, several_faces
from station.screen.spot_size import IPD_MM, psf_sigma_px, read_spot
from station.screen.thermal_faces import ThermalFaceSettings
from station.screen.thermal_faces import find_faces as find_thermal_faces
from station.screen.track import GEOMETRY_FLAGS, Tracker, TrackSettings, Verdict, add_reading, decide, ready
from station.types import (
    ALARM_LEVELS,
    EventKind,
    Faces,
    FramePair,
    Measurement,
    ScreeningDecision,
    Site,
    SystemEvent,
    ThermalImage,
)

THERMAL_ONLY_MAX_GAP_S = 2.5
THERMAL_ONLY_CONFIRM_FRAMES = 3  # detections before a thermal-only track may be decided
#: How long after a measured face vanished where it stood (stepped back out of the zone, turned away, looked
#: down) a face coming back to the spot may be that person's return (see station.screen.track.Tracker.update):
#: "a few seconds" out and back; later, the next visitor is as likely, and a second decision is harmless.
THERMAL_ONLY_RETURN_S = 5.0
STILL_WIDTHS_PER_S = 0.3  # a face moving less than this many of its own widths per second stands still
#: How far a profile's date may be after the frame it screens: a technician PC's clock a few hours off
#: is ordinary; a day or more means the profile cannot have been the one in effect.
FUTURE_CALIBRATION_TOLERANCE_DAYS = 1.0
#: A canthus ROI narrower than this (thermal px) is measurable but read better a step closer: advised.
STEP_CLOSER_ROI_PX = 4.0
#: The sensor's noise on one pixel of one frame (°C): the Lepton's and Boson's NETD, < 50 mK at f/1.
SENSOR_NOISE_C = 0.05
#: Standard uncertainty (°C) the reference leaves: an ETRS blackbody's +-0.1 °C accuracy as a rectangular
#: distribution (0.1 / sqrt 3), with the drift correction's residual; a kiosk's reference disc is read off
#: a few blurred pixels and is known less well (its temperature is entered, not calibrated).
BLACKBODY_U_C = 0.07
REFERENCE_DISC_U_C = 0.2


def reference_u_c(profile: CalibrationProfile) -> float:
    """What the profile's temperature reference leaves uncertain (0 without one: nothing is screened)."""
    if profile.blackbody is None:
        return 0.0
    return REFERENCE_DISC_U_C if profile.blackbody.disc else BLACKBODY_U_C


@dataclass
class Tick:
    """Everything the station knows after one frame pair: what the window draws and the log keeps."""

    pair: FramePair
    thermal: ThermalImage
    faces: Faces
    track_ids: np.ndarray
    measurements: list[Measurement]
    decisions: list[ScreeningDecision] = field(default_factory=list)
    events: list[SystemEvent] = field(default_factory=list)
    screening_paused: bool = False
    detected: bool = True  # False: an idle pair the schedule skipped; faces and measurements are the last ones

    @property
    def t(self) -> float:
        return self.pair.t


class Station:
    """One screening station: its intake, detector, calibration, policy and (optionally) its log."""

    def __init__(
        self,
        intake: Intake,
        detector: FaceDetector,
        profile: CalibrationProfile,
        radiometer: Radiometer,
        policy: AlarmPolicy,
        store: EventStore | GuardedLog | None = None,
        *,
        measure: MeasureSettings | None = None,
        track: TrackSettings | None = None,
        idle_detect_every: int = 2,
        max_calibration_age_days: float = MAX_CALIBRATION_AGE_DAYS,
        retention: RetentionPolicy | None = None,
    ) -> None:
        self.intake = intake
        self.detector = detector
        self.profile = profile
        self.radiometer = radiometer
        self.policy = policy
        # Every write goes through the guard: a log that cannot be written never stops the screening.
        self.log = GuardedLog(lambda: store) if isinstance(store, EventStore) else store
        # Retention runs in the engine (at start-up, then daily), where the log is open and written.
        self.retention = None if retention is None else RetentionSchedule(retention, lambda: self.intake.last_t)
        self.measure_settings = measure or MeasureSettings()
        # Without a visible camera the face model sees thermal faces, and misses them for a second or two
        # at a time (a turned head, glasses): a person standing at the kiosk must stay one track, so a face
        # may vanish longer before its track ends; and a measured person who steps back out of the zone and
        # comes back within a few seconds is recognised, not decided twice.
        self.thermal_only = thermal_only = getattr(intake, "visible", True) is None
        thermal_tracks = TrackSettings(max_gap_s=THERMAL_ONLY_MAX_GAP_S, max_predict_s=0.3, reacquire_widths=1.0,
                                       return_s=THERMAL_ONLY_RETURN_S)
        self.track_settings = track or (thermal_tracks if thermal_only else TrackSettings())
        self.tracker = Tracker(self.track_settings)
        self.calibration_id = f"{profile.station_id}@{profile.created}"
        self._blackbody_error: float | None = None
        self._thermal_boxes: dict[int, np.ndarray] = {}  # each track's face on the thermal image, for snapshots
        # Each logged decision's row in the event store, by track id: what a window needs to acknowledge
        # an alarm through the store (read it on the thread that runs the station, right after the decision).
        self.screening_ids: dict[int, int] = {}
        # Who hears of acknowledgements made elsewhere for this station's alarms (the fleet's security desk):
        # each is called with (screening_id, operator, action) after the acknowledgement is logged.
        self.remote_ack_listeners: list[Callable[[int, str, str], None]] = []
        self.idle_detect_every = idle_detect_every
        self.thermal_face_settings = ThermalFaceSettings()
        # The calibration is judged at the time of each frame (a replay's: when it was recorded), so a
        # recording screens the same on any day; an expired or future-dated one pauses screening.
        self.wall_time = getattr(intake, "wall_time", None) or live_wall_time
        self._max_age_days = max_calibration_age_days
        self.calibration_age_days: float | None = None
        self.calibration_expired = False
        self._calibration_event = self._judge_calibration(0.0)
        # when the profile passes its age limit, so each frame only compares two times (None: not checked)
        self._expires_at = (None if self.calibration_age_days is None or self.calibration_expired else
                            self.wall_time(0.0) + timedelta(days=max_calibration_age_days - self.calibration_age_days))
        self._profile_fits_frames = False
        # No blackbody and no reference disc at a known temperature: nothing ties the camera's numbers to
        # degrees (a Lepton is specified at +-5 °C), so no absolute temperature may be claimed.
        self.unreferenced = profile.blackbody is None
        self.psf_sigma_px = profile.optics_psf_sigma_px or psf_sigma_px(_thermal_camera(intake))
        self.noise_c = SENSOR_NOISE_C
        self.reference_u_c = reference_u_c(profile)
        self._idle_pairs = 0
        self._last_seen: tuple[Faces, np.ndarray, list[Measurement]] = (Faces.empty(), np.zeros(0, np.int64), [])
        self._faces_key: tuple[int, float] | None = None
        self._faces_cache = Faces.empty()

    def _judge_calibration(self, t: float) -> SystemEvent | None:
        """Judge the calibration's age at the frame time ``t``; the event to tell, if any.

        Sets :attr:`calibration_age_days` (``None`` when a recording does not say when it was made) and
        :attr:`calibration_expired`, which pauses screening. A profile made more than a day after the
        frame cannot have been the one in effect (a clock set wrong, a profile copied from the future): it
        is refused like an expired one rather than trusted forever.
        """
        when = self.wall_time(t)
        if when is None:
            self.calibration_age_days = None
            return SystemEvent(EventKind.CALIBRATION_AGE_UNKNOWN, t, f"the recording does not say when it was made "
                               f"(no recorded_at): the age of calibration {self.calibration_id} is not checked")
        age = self.profile.age_days(when)
        self.calibration_age_days = age
        if age < -FUTURE_CALIBRATION_TOLERANCE_DAYS:
            self.calibration_expired = True
            return SystemEvent(EventKind.CALIBRATION_EXPIRED, t, f"calibration {self.calibration_id} is dated "
                               f"{-age:.0f} days after this frame ({when:%Y-%m-%d %H:%M} UTC): a clock is wrong; "
                               "screening paused until a technician recalibrates")
        if age > self._max_age_days:
            self.calibration_expired = True
            return SystemEvent(EventKind.CALIBRATION_EXPIRED, t, f"calibration {self.calibration_id} is {age:.0f} days "
                               f"old (limit {self._max_age_days:.0f}): screening paused until a technician "
                               "recalibrates")
        return None

    # ------------------------------------------------------------------ the loop
    def run(self) -> Iterator[Tick | SystemEvent]:
        if self._calibration_event is not None:
            self.log_event(self._calibration_event)
            yield self._calibration_event
        if self.unreferenced:
            event = SystemEvent(EventKind.UNREFERENCED, 0.0, "no blackbody in the profile and no reference disc at a "
                                "known temperature: the camera's own numbers may be degrees off, so nobody is "
                                "screened (retry: unreferenced); add a blackbody (station calibrate blackbody) "
                                "or give a kiosk's disc temperature (--reference-c)")
            self.log_event(event)
            yield event
        for item in self.intake.run():
            if isinstance(item, SystemEvent):
                self.log_event(item)
                yield item
                continue
            yield self.process(item)
        for decision in self._close_tracks(float("inf"), self.intake.last_t):
            self._log_decision(decision, None, None)
            yield decision  # type: ignore[misc]

    @property
    def store(self) -> EventStore | None:
        """The event store when it is open (None with no log, or while it cannot be opened)."""
        return None if self.log is None else self.log.store

    def process(self, pair: FramePair) -> Tick:
        """Everything for one frame pair; public so tests can feed pairs without an intake."""
        if not self._profile_fits_frames:
            # The profile speaks in pixels of cameras it does not name: the first frames say whether
            # they are these (a blackbody ROI off the frame, a registration that misses it: one line).
            visible_shape = None if pair.visible is None else pair.visible.image.shape
            check_profile_fits(self.profile, pair.thermal.image.shape, visible_shape,
                               origin=f"calibration {self.calibration_id}")
            self._profile_fits_frames = True
        thermal, events = self.radiometer.convert(pair.thermal)
        for event in events:
            self.log_event(event)
        if self.log is not None:
            self.log.poll(pair.t)
            events = [*events, *self._purge_if_due()]
        self._blackbody_error = thermal.blackbody_error_c
        if self._expires_at is not None and self.wall_time(pair.t) > self._expires_at:
            self._expires_at = None
            expired = self._judge_calibration(pair.t)  # a station running past its calibration's limit
            if expired is not None:
                self.log_event(expired)
                events = [*events, expired]
        paused = not self.radiometer.screening_allowed or self.calibration_expired or self.unreferenced
        if self._detect_now(pair):
            faces = self._faces(pair, thermal)
            ids = self.tracker.update(pair.t, faces.xyxy)
            measurements = self._measure(pair, thermal, faces, ids, paused)
            self._idle_pairs, self._last_seen = 0, (faces, ids, measurements)
            detected = True
        else:  # nobody waiting to be measured: show the last faces, look again on the next pair
            faces, ids, measurements = self._last_seen
            self._idle_pairs += 1
            detected = False
        tick = Tick(pair, thermal, faces, ids, measurements, events=events, screening_paused=paused,
                    detected=detected)
        for track in self.tracker.tracks.values():
            if self.thermal_only and track.frames_seen < THERMAL_ONLY_CONFIRM_FRAMES:
                continue  # a face the thermal model saw once or twice is not yet a person
            if ready(track, pair.t, self.track_settings):
                decision = decide(track, pair.t, self._level_of, self.track_settings.min_samples,
                                  self.track_settings.best_share)
                self._log_decision(decision, pair, thermal)
                tick.decisions.append(decision)
        for decision in self._close_tracks(pair.t, pair.t):
            self._log_decision(decision, None, None)
            tick.decisions.append(decision)
        if self.log is not None and self.log.notices:  # the log's own faults and recoveries, to be shown
            tick.events = [*tick.events, *self.log.notices]
            self.log.notices.clear()
        return tick

    def _detect_now(self, pair: FramePair) -> bool:
        """The detection schedule: every pair while a face near the station is undecided (so no decision
        waits) or moving (a track that skipped a frame could take over the next visitor stepping into
        the place of one leaving); otherwise (an empty entrance, decided people standing still, faces
        far away) every ``idle_detect_every``-th pair, which still finds a newcomer long before they
        are near: a face counts as near at 1.5x the distance where it becomes measurable."""
        if self.idle_detect_every <= 1 or self._idle_pairs + 1 >= self.idle_detect_every:
            return True
        max_gap = self.track_settings.max_gap_s
        for track in self.tracker.tracks.values():
            if not track.near_now or pair.t - track.last_seen > max_gap:
                continue
            width = float(track.box[2] - track.box[0])
            moving = float(np.hypot(*track.velocity_px_s)) > STILL_WIDTHS_PER_S * width
            if moving or not track.decided:
                return True
        return False

    def _faces(self, pair: FramePair, thermal: ThermalImage) -> Faces:
        """Faces in the pair's visible frame, or in the thermal frame itself when there is no visible camera
        (:mod:`station.screen.thermal_faces`). A thermal camera faster than the visible one pairs the same
        visible frame with several thermal frames; its faces are found once, not once per pairing."""
        if pair.visible is None:
            return find_thermal_faces(self.detector, thermal.celsius, self.thermal_face_settings)
        key = (pair.visible.index, pair.visible.t)
        if key != self._faces_key:
            self._faces_key, self._faces_cache = key, self.detector.detect(pair.visible.image)
        return self._faces_cache

    # ------------------------------------------------------------------ measurement
    def _measure(self, pair, thermal: ThermalImage, faces: Faces, ids, paused: bool) -> list[Measurement]:
        if not len(faces):
            return []
        registration = self.profile.registration
        if pair.visible is None:  # faces found on the thermal image: already where they are measured
            thermal_xyxy, thermal_landmarks = faces.xyxy, faces.landmarks
            # In a thermal-only profile the one camera is the thermal one: its focal length is the profile's.
            distance = np.asarray(distance_from_eyes(faces.eye_distance_px, registration.visible_focal_px))
        else:
            thermal_xyxy, thermal_landmarks, distance = map_faces(faces, registration)
        smoothed = block_mean(thermal.celsius, self.measure_settings.kernel_px)
        reflected = estimate_reflected_c(thermal.celsius)
        self.policy.ambient_c = reflected  # the room as the camera sees it, for a model that uses it
        # Spectacle wearers are read on the forehead and mouth when the policy has a body model for that site.
        glasses_site = self.policy.measures(Site.FOREHEAD_MOUTH)
        readings = [
            read_skin(thermal.celsius, smoothed, thermal_landmarks[k], faces.landmarks[k], self.measure_settings,
                      glasses_site=glasses_site)
            for k in range(len(faces))
        ]
        # Only faces that could themselves be measured crowd the zone: someone turned away to leave, or
        # far behind, does not spoil the reading of the person in front.
        in_zone = np.array([not (r.quality & GEOMETRY_FLAGS) for r in readings])
        crowded = several_faces(faces.eye_distance_px, in_zone, self.measure_settings.nearby_face_ratio)
        out = []
        for k, reading in enumerate(readings):
            quality = set(reading.quality)
            if crowded[k]:
                quality.add("several_faces")
            if self.calibration_expired:
                quality.add("calibration_expired")
            elif self.unreferenced:
                quality.add("unreferenced")
            elif paused:
                quality.add("blackbody_bad")
            if self._moving(int(ids[k]), pair):
                quality.add("motion")
            skin, u_spot = None, 0.0
            if reading.apparent_c is not None and not quality:
                apparent = reading.apparent_c
                if reading.site == Site.CANTHUS and reading.hottest_px is not None:
                    px_per_mm = reading.roi_side_px / ROI_SIDE / IPD_MM  # the face's own ruler: its eyes
                    spot = read_spot(thermal.celsius, reading.hottest_px, self.psf_sigma_px, px_per_mm)
                    if spot is not None:  # the hot spot's peak, corrected for what the optics spread
                        apparent, u_spot = spot.corrected_c, spot.u_c
                skin = self.radiometer.skin_c(apparent, reflected)
                if reading.roi_side_px < STEP_CLOSER_ROI_PX and reading.site == "canthus":
                    quality.add("step_closer")  # read, but a step closer would read it better
            track = self.tracker.tracks[int(ids[k])]
            near = reading.roi_side_px >= self.measure_settings.near_roi_px and "off_axis" not in reading.quality
            track.near_now = reading.roi_side_px >= self.measure_settings.near_roi_px
            add_reading(track, pair.t, skin, frozenset(quality), near, reading.site, side_px=reading.roi_side_px,
                        u_sys_c=math.hypot(u_spot, self.reference_u_c), noise_c=self.noise_c)
            self._thermal_boxes[track.track_id] = thermal_xyxy[k]
            out.append(
                Measurement(
                    track_id=int(ids[k]),
                    skin_c=skin,
                    hottest_px=reading.hottest_px,
                    thermal_xyxy=tuple(float(v) for v in thermal_xyxy[k]),
                    distance_m=float(distance[k]),
                    quality=frozenset(quality),
                    site=reading.site,
                )
            )
        return out

    def _moving(self, track_id: int, pair: FramePair) -> bool:
        """Whether the face moved enough between the two exposures to miss its canthus on the thermal."""
        track = self.tracker.tracks[track_id]
        speed_px_s = float(np.hypot(*track.velocity_px_s))
        registration = self.profile.registration
        scale = abs(np.linalg.det(registration.matrix[:2, :2])) ** 0.5  # thermal px per visible px
        shift = speed_px_s * abs(pair.skew) * scale
        return shift > self.measure_settings.max_shift_px

    # ------------------------------------------------------------------ decisions and the log
    def _level_of(self, skin_c: float | None, quality: frozenset[str], site: str = Site.CANTHUS,
                  u_skin_c: float | None = None) -> Verdict:
        return self.policy.judge(skin_c, quality, self.intake.last_t, site, u_skin_c)

    def _close_tracks(self, now: float, t: float) -> list[ScreeningDecision]:
        gone = self.tracker.ended(now)
        out = []
        for track in gone:
            if track.owes_retry(min_stand_s=self.track_settings.min_stand_s):
                out.append(decide(track, t, self._level_of, self.track_settings.min_samples,
                                  self.track_settings.best_share))
        return out

    def _purge_if_due(self) -> list[SystemEvent]:
        """Purge old images and records when due and the log is open; a failure is said, not fatal."""
        now = datetime.now(UTC)
        if self.retention is None or self.store is None or not self.retention.due(now):
            return []
        try:
            return [self.retention.run(self.store, now)]
        except StationError as exc:
            event = SystemEvent(EventKind.RETENTION_FAILED, self.intake.last_t, str(exc))
            self.log_event(event)
            return [event]

    def log_event(self, event: SystemEvent) -> None:
        if self.log is not None:
            self.log.event(event)

    def _log_decision(self, decision: ScreeningDecision, pair: FramePair | None, thermal) -> None:
        if self.log is None:
            return
        snapshots = None
        if decision.level in ALARM_LEVELS and pair is not None:
            snapshots = self._snapshots(decision.track_id, pair, thermal)
        screening_id = self.log.screening(
            decision,
            decision.t_decided,
            calibration_id=self.calibration_id,
            model_sha256=self.detector.model_sha256,
            blackbody_error_c=self._blackbody_error,
            source=self.intake.label,
            snapshots=snapshots,
            body_model=self.policy.model_id(decision.site),
        )
        if screening_id is not None:  # None while the log cannot be written: the alarm still goes up
            self.screening_ids[decision.track_id] = screening_id

    def _snapshots(self, track_id: int, pair: FramePair, thermal: ThermalImage) -> dict[str, np.ndarray]:
        """Crops of the alarming face only: the least image that lets a guard check who raised it."""
        track = self.tracker.tracks.get(track_id)
        thermal_box = self._thermal_boxes.get(track_id)
        if track is None or pair.visible is None or thermal_box is None:
            return {}
        return {"visible": _crop(pair.visible.image, track.box), "thermal": _crop(thermal.celsius, thermal_box)}


def _thermal_camera(intake: Intake) -> str:
    """The thermal camera's name as its recording or its source gives it ('' when neither says)."""
    thermal = getattr(intake, "thermal", None)
    recording = getattr(thermal, "recording", None)
    if recording is not None:
        return str(recording.thermal.camera)
    return str(getattr(thermal, "name", ""))


def _crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return image[max(y1, 0) : min(max(y2, 0), h), max(x1, 0) : min(max(x2, 0), w)].copy()
