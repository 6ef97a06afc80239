"""Who is who across frames, and exactly one decision per person.

A guard needs one answer per visitor, fast: not a flickering number per frame. Each track gathers the
good canthus readings of one face; it is decided as soon as it has enough of them (3 readings over at
least 0.2 s, so one noisy frame cannot decide), and at the latest 1 s after it first became measurable
(then with the good readings it has if there are enough, else ``retry`` with the reasons). A face that leaves before
it was decided also gets ``retry``, so nobody walks through unscreened without the guard being told.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from station.types import ADVISORY_FLAGS, SITES, ScreeningDecision
from station.uncertainty import reading_spread_u

# Flags that say a face is not (yet) measurable at all, as opposed to measurable but spoiled.
GEOMETRY_FLAGS = frozenset({"too_far", "off_axis"})
# Flags that say the station itself cannot screen just now, whoever stands there.
PAUSED_FLAGS = frozenset({"blackbody_bad", "calibration_expired", "unreferenced"})


class Reading(NamedTuple):
    """One good skin reading of a track: when, what, how well resolved, and its systematic uncertainty.

    ``side_px``: thermal pixels across the canthus ROI (the resolution it was read at; 0 when unknown);
    ``u_sys_c``: the standard uncertainty that does not average away over frames (the reference, the
    spot-size correction at this resolution); ``noise_c``: the sensor's noise on one reading.
    """

    t: float
    skin_c: float
    side_px: float = 0.0
    u_sys_c: float = 0.0
    noise_c: float = 0.0


class Verdict(NamedTuple):
    """The alarm policy's answer for one person: level, body °C, its u95 and any flag the policy adds."""

    level: str
    body_c: float | None
    u95_c: float | None = None
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TrackSettings:
    """min_samples and min_span_s: enough agreeing readings; max_wait_s: the latest a decision may come
    after the face first became measurable; max_gap_s: how long a face may vanish (a detector miss,
    someone passing in front) before its track ends; min_iou: box overlap to continue a track;
    min_stand_s: how long a face must stay near the station (just too far to measure) before leaving
    unmeasured earns it a ``retry`` all the same; max_predict_s: how far ahead a vanished face's box is
    carried by its last velocity (beyond a fraction of a second people stop, and a box carried on would
    miss the face when it is found again); reacquire_widths: a face that matches no track by overlap
    joins a track lost this frame if it is within this many widths of where that track was last seen,
    at a similar size (0: never). For a kiosk, where one person stands at a time and a face the thermal
    model loses comes back where it was, after a turn or a bow the prediction overshot.

    settle_wait_s and best_share: where the canthus is best resolved. A hot spot a few pixels across reads
    low (the optics spread it), less so the closer the person, so a track with enough readings still waits
    while its face keeps growing (the person is still approaching), up to settle_wait_s after it became
    screenable, and then decides on the readings taken at >= best_share of its best resolution."""

    min_samples: int = 3
    min_span_s: float = 0.2
    max_wait_s: float = 1.0
    max_gap_s: float = 0.6
    min_iou: float = 0.3
    min_stand_s: float = 0.5
    max_predict_s: float = 0.6
    reacquire_widths: float = 0.0
    reacquire_ratio: float = 1.5
    settle_wait_s: float = 0.8
    best_share: float = 0.85


@dataclass
class Track:
    track_id: int
    first_seen: float
    last_seen: float
    box: np.ndarray
    velocity_px_s: np.ndarray = field(default_factory=lambda: np.zeros(2))
    first_measurable: float | None = None
    # first measurable reading while screening was allowed: the decision clock (max_wait_s) starts here, so
    # a glimpse while the blackbody was out of tolerance does not use up a visitor's time
    first_screenable: float | None = None
    first_near: float | None = None  # first time the face stood near the station, measurable or not
    near_now: bool = False  # at the last reading, the face was near the station (facing it or not)
    # the good readings, by site: the canthi, and the forehead and mouth read while glasses hid the canthi;
    # one median never mixes the two
    samples: dict[str, list[Reading]] = field(default_factory=lambda: {site: [] for site in SITES})
    flags: Counter = field(default_factory=Counter)
    frames_seen: int = 1
    decided: bool = False

    def owes_retry(self, min_frames: int = 3, min_stand_s: float = 0.5) -> bool:
        """Left undecided after coming into measuring range, or after standing at the station a while just
        too far to measure (seen steadily, not a one-frame false face): the guard must be told. Someone
        who only walked by in the distance was not there to be screened."""
        if self.decided or self.frames_seen < min_frames:
            return False
        if self.first_measurable is not None:
            return True
        return self.first_near is not None and self.last_seen - self.first_near >= min_stand_s

    @property
    def centre(self) -> np.ndarray:
        return (self.box[:2] + self.box[2:]) / 2.0


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over union of xyxy boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def shift_and_ratio(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(len(a), len(b)) distances between xyxy box centres in widths of the wider box, and width ratios
    (wider over narrower, >= 1): the two numbers that say whether two boxes could be one face."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    aw, bw = a[:, 2] - a[:, 0], b[:, 2] - b[:, 0]
    ac, bc = (a[:, :2] + a[:, 2:]) / 2.0, (b[:, :2] + b[:, 2:]) / 2.0
    wider = np.maximum(aw[:, None], bw[None, :])
    shift = np.linalg.norm(ac[:, None, :] - bc[None, :, :], axis=-1) / np.maximum(wider, 1e-9)
    return shift, wider / np.maximum(np.minimum(aw[:, None], bw[None, :]), 1e-9)


def near_score(predicted: np.ndarray, boxes: np.ndarray, floor: float, max_shift: float = 0.75) -> np.ndarray:
    """A second chance for boxes that overlap their track too little: a face walking in sideways close to
    the camera moves more than its own width between frames at low frame rates, and its box size jumps
    with the detector's framing. If the centres lie within ``max_shift`` box widths and the sizes agree
    within a factor 1.4, the pair scores just above ``floor`` (nearer is better), else 0."""
    shift, ratio = shift_and_ratio(predicted, boxes)
    ok = (shift < max_shift) & (ratio < 1.4)
    return np.where(ok, floor + 1e-3 * (1.0 - shift / max_shift), 0.0)


class Tracker:
    """Greedy IoU tracking with constant-velocity prediction: faces at an entrance move slowly and
    rarely cross, so the simplest tracker that survives a missed frame is the right one."""

    def __init__(self, settings: TrackSettings = TrackSettings()) -> None:
        self.settings = settings
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(self, t: float, boxes: np.ndarray) -> np.ndarray:
        """Assign a track id to each box (N,4) seen at t; returns the (N,) ids."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        live = [tr for tr in self.tracks.values() if t - tr.last_seen <= self.settings.max_gap_s]
        ids = np.zeros(len(boxes), dtype=np.int64)
        if live and len(boxes):
            ahead = self.settings.max_predict_s
            predicted = np.array([tr.box + np.tile(tr.velocity_px_s * min(t - tr.last_seen, ahead), 2)
                                  for tr in live])
            iou = np.maximum(iou_matrix(predicted, boxes), near_score(predicted, boxes, self.settings.min_iou))
            while True:
                k, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
                if iou[k, j] < self.settings.min_iou:
                    break
                self._continue(live[k], t, boxes[j])
                ids[j] = live[k].track_id
                iou[k, :] = -1
                iou[:, j] = -1
        if self.settings.reacquire_widths > 0 and live:
            self._reacquire(t, boxes, ids, live)
        for j in np.flatnonzero(ids == 0):
            track = Track(self._next_id, t, t, boxes[j].copy())
            self.tracks[track.track_id] = track
            ids[j] = track.track_id
            self._next_id += 1
        return ids

    def _reacquire(self, t: float, boxes: np.ndarray, ids: np.ndarray, live: list[Track]) -> None:
        """Give each still unmatched box to the nearest unmatched live track seen last close by (in widths of
        the larger box) at a similar size; measured from where it was last seen, not from its prediction."""
        taken = set(int(i) for i in ids if i)
        shift, ratio = shift_and_ratio(np.array([track.box for track in live]), boxes)
        close = (shift < self.settings.reacquire_widths) & (ratio < self.settings.reacquire_ratio)
        for j in np.flatnonzero(ids == 0):
            free = [k for k in np.flatnonzero(close[:, j]) if live[k].track_id not in taken]
            if free:
                track = live[min(free, key=lambda k: shift[k, j])]
                self._continue(track, t, boxes[j])
                ids[j] = track.track_id
                taken.add(track.track_id)

    def _continue(self, track: Track, t: float, box: np.ndarray) -> None:
        dt = t - track.last_seen
        if dt > 0:
            velocity = ((box[:2] + box[2:]) / 2.0 - track.centre) / dt
            track.velocity_px_s = 0.5 * track.velocity_px_s + 0.5 * velocity
        track.box = box.copy()
        track.last_seen = t
        track.frames_seen += 1

    def ended(self, t: float) -> list[Track]:
        """Tracks not seen for longer than the gap allows: those people have left. Removed here."""
        gone = [tr for tr in self.tracks.values() if t - tr.last_seen > self.settings.max_gap_s]
        for tr in gone:
            del self.tracks[tr.track_id]
        return gone


def add_reading(track: Track, t: float, skin_c: float | None, quality: frozenset[str], near: bool = False,
                site: str = "canthus", *, side_px: float = 0.0, u_sys_c: float = 0.0,
                noise_c: float = 0.0) -> None:
    """Record what one frame said about a track's face; ``near``: it stands at the station, even if too far
    to measure; ``site``: where ``skin_c`` was read (``"forehead_mouth"`` when glasses hid the canthi);
    ``side_px``, ``u_sys_c``, ``noise_c``: see :class:`Reading`. Advisory flags (``step_closer``) never
    withhold a reading."""
    quality = frozenset(quality) - ADVISORY_FLAGS
    if (near or not quality & GEOMETRY_FLAGS) and track.first_near is None:
        track.first_near = t
    if not (quality & GEOMETRY_FLAGS):
        if track.first_measurable is None:
            track.first_measurable = t
        if track.first_screenable is None and not quality & PAUSED_FLAGS:
            track.first_screenable = t
    if skin_c is not None and not quality:
        track.samples[site].append(Reading(t, float(skin_c), float(side_px), float(u_sys_c), float(noise_c)))
    if track.first_measurable is not None:  # on the approach, "too far" is no reason worth reporting
        for flag in quality:
            track.flags[flag] += 1


def ready(track: Track, t: float, settings: TrackSettings) -> bool:
    """Whether this track should be decided now (it has enough, or its time is up)."""
    if track.decided or track.first_measurable is None:
        return False
    waited = track.first_screenable is not None and t - track.first_screenable >= settings.settle_wait_s
    for samples in track.samples.values():
        if len(samples) >= settings.min_samples and samples[-1].t - samples[0].t >= settings.min_span_s:
            if waited or not _approaching(samples):
                return True
    # The clock runs from the first reading screening allowed; while it is paused the decision waits for
    # the person to leave (then ``retry``, for the pause's reason).
    return track.first_screenable is not None and t - track.first_screenable >= settings.max_wait_s


def decide(track: Track, t: float, level_of: Callable, min_samples: int = 3,
           best_share: float = 1.0) -> ScreeningDecision:
    """The track's one decision: the median of its good readings, or ``retry`` with why.

    The canthi, the standard's site, decide whenever they gave enough readings; the second site (forehead
    and mouth, read while glasses hid the canthi) only when they did not. The two are never mixed: each
    site has its own skin-to-body model. Fewer than ``min_samples`` good readings are not enough even when
    time is up: one reading that slipped through among frames flagged ``glasses`` is more likely a failed
    check than a measurement. ``level_of(skin_c | None, quality, site, u_skin_c) -> Verdict`` (or its
    first two fields, ``(level, body_c)``) is the alarm policy's verdict; ``u_skin_c`` is the skin
    reading's standard uncertainty. ``best_share`` (< 1) decides on the best-resolved readings only.
    """
    track.decided = True
    for site, samples in track.samples.items():  # in the order of SITES: the canthi first
        if len(samples) >= min_samples:
            chosen = best_resolved(samples, min_samples, best_share)
            skin = float(np.median([r.skin_c for r in chosen]))
            u_skin = math.hypot(reading_spread_u([r.skin_c for r in chosen], max(r.noise_c for r in chosen)),
                                float(np.mean([r.u_sys_c for r in chosen])))
            verdict = Verdict(*level_of(skin, frozenset(), site, u_skin))
            return ScreeningDecision(track.track_id, track.first_seen, t, skin, verdict.body_c, verdict.level,
                                     verdict.flags, site, verdict.u95_c)
    reasons = _main_reasons(track)
    verdict = Verdict(*level_of(None, reasons, "canthus", None))
    return ScreeningDecision(track.track_id, track.first_seen, t, None, verdict.body_c, verdict.level, reasons)


def best_resolved(samples: list[Reading], min_samples: int, share: float) -> list[Reading]:
    """The readings taken where the canthus was best resolved: within ``share`` of the largest ROI side,
    and never fewer than ``min_samples`` (the best-resolved ones, then)."""
    top = max(r.side_px for r in samples)
    chosen = [r for r in samples if r.side_px >= share * top]
    if len(chosen) < min_samples:
        chosen = sorted(samples, key=lambda r: r.side_px, reverse=True)[:min_samples]
    return chosen


def _approaching(samples: list[Reading], window_s: float = 0.3, growth: float = 0.05) -> bool:
    """Whether the face is still coming closer: its canthus ROI grew by more than ``growth`` over the last
    ``window_s`` of readings (a person standing still sways a few percent; one walking up grows fast)."""
    last = samples[-1]
    if last.side_px <= 0:
        return False
    earlier = [r for r in samples if last.t - r.t >= window_s]
    if not earlier:
        return True  # too short a history to tell: the person only just became measurable
    return last.side_px > (1.0 + growth) * earlier[-1].side_px


def _main_reasons(track: Track) -> frozenset[str]:
    """The flags that kept this face from being measured: those seen in at least a third of its frames."""
    if not track.flags:
        return frozenset({"too_far"}) if track.first_measurable is None else frozenset({"motion"})
    top = max(track.flags.values())
    return frozenset(flag for flag, n in track.flags.items() if n >= top / 3)
