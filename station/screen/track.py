"""Who is who across frames, and exactly one decision per person.

A guard needs one answer per visitor, fast: not a flickering number per frame. Each track gathers the
good canthus readings of one face; it is decided as soon as it has enough of them (3 readings over at
least 0.2 s, so one noisy frame cannot decide), and at the latest 1 s after it first became measurable
(then with the good readings it has if there are enough, else ``retry`` with the reasons). A face that leaves before
it was decided also gets ``retry``, so nobody walks through unscreened without the guard being told.

A person who steps back out of the measuring zone and comes back a few seconds later is still one person:
with ``return_s`` set (thermal-only kiosks), the tracker recognises the return of a measured face that
vanished where it stood and holds the new track's decision until its own readings confirm it (see
:meth:`Tracker.update`); anything less certain gets a decision of its own.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from station.screen.uncertainty import reading_spread_u
from station.types import ADVISORY_FLAGS, SITES, Flag, ScreeningDecision, Site

# Flags that say a face is not (yet) measurable at all, as opposed to measurable but spoiled.
GEOMETRY_FLAGS = frozenset({Flag.TOO_FAR, Flag.OFF_AXIS})
# Flags that say the station itself cannot screen just now, whoever stands there.
PAUSED_FLAGS = frozenset({Flag.BLACKBODY_BAD, Flag.CALIBRATION_EXPIRED, Flag.UNREFERENCED})


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
    screenable, and then decides on the readings taken at >= best_share of its best resolution.

    return_s and the other ``return_*`` settings: the return of a measured person (0: never; thermal-only
    kiosks, where a person who steps back out of the zone, turns away or looks down loses their face for
    longer than ``max_gap_s``). A new face may continue a decided track that vanished between
    return_after_s and return_s earlier, without walking off (sideways faster than leave_widths_per_s of
    its width per second) and with nobody else seen since, if it first appears within return_widths of
    where that face was last seen and at most return_ratio times as wide (it may come back from farther
    away, so smaller). Its decision is then held until it would be decided, and dropped only if its
    own readings at the same site agree with the person's within return_agree_c; see
    :meth:`Tracker.update` for why each condition is there."""

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
    return_s: float = 0.0
    return_after_s: float = 0.6
    return_widths: float = 1.0
    return_ratio: float = 1.5
    leave_widths_per_s: float = 0.5
    return_agree_c: float = 0.5


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
    # Kept by the tracker for returns (TrackSettings.return_s). ``decided_site``: the site whose readings
    # decided this track (None: it was decided without enough readings, i.e. told to retry), noted once
    # ``noted``; ``held_for``: the decided track this one may be the return of: its own decision is held
    # back (``decided`` stays set) until its readings confirm or refute that; ``continues``: the track id
    # of the person this track was confirmed to be; ``returned_as``: the id of the track that took up this
    # track's return, so one person is continued at most once.
    decided_site: str | None = None
    noted: bool = False
    held_for: Track | None = None
    continues: int | None = None
    returned_as: int | None = None

    def owes_retry(self, min_frames: int = 3, min_stand_s: float = 0.5) -> bool:
        """Left undecided after coming into measuring range, or after standing at the station a while just
        too far to measure (seen steadily, not a one-frame false face): the guard must be told. Someone
        who only walked by in the distance was not there to be screened.

        A track still held as a possible return (``held_for``) that leaves before its readings confirmed
        it counts as undecided: unconfirmed, it may have been someone else, and a second decision (at worst
        a ``retry``) is better than a visitor the guard was never told about."""
        if (self.decided and self.held_for is None) or self.frames_seen < min_frames:
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
    rarely cross, so the simplest tracker that survives a missed frame is the right one.

    With ``settings.return_s`` > 0 it also recognises a measured person coming back (see :meth:`update`).
    """

    def __init__(self, settings: TrackSettings = TrackSettings()) -> None:
        self.settings = settings
        self.tracks: dict[int, Track] = {}
        self._next_id = 1
        # tracks that ended within the last return_s: possible returns, and who else was in view meanwhile
        self._gone: list[Track] = []

    def update(self, t: float, boxes: np.ndarray) -> np.ndarray:
        """Assign a track id to each box (N,4) seen at t; returns the (N,) ids.

        Notes
        -----
        **Returns** (only with ``settings.return_s`` > 0). A kiosk has one measuring spot, and a person who
        steps back out of it (to let a bag through, to answer a companion, because the screen said "step
        closer" and they misjudged it), turns away or looks down loses their face for longer than
        ``max_gap_s``; when it comes back it would start a second track and earn a second decision. So a
        face that starts a track continues a decided one (``held_for``) when all of these hold (a decided
        face gone ``return_after_s`` or more is never continued directly, by overlap or re-acquisition:
        the next visitor steps into the same spot, sometimes within ``max_gap_s``):

        * that track was *measured* (decided on enough readings, ``decided_site``): a ``retry`` asks the
          person to try again, and their next try must be decided afresh;
        * it vanished between ``return_after_s`` and ``return_s`` ago: a face missing for a detection or
          two is simply continued (after their decision, faces in the 14 kiosk recordings were never
          missing for longer than 0.23 s, decided faces being looked for on every other frame), and after
          a few seconds the next visitor is as likely as a return;
        * it did not walk off: most people leave a kiosk by walking on past the camera, which carries their
          face sideways until it is lost (9 of the 11 faces that left in the 14 kiosk recordings, at
          0.76-3.8 widths/s; the next visitor came 1.5-4.1 s later), while a step back, a turned head or a
          bow leaves it where it stood (the other 2, spectacle wearers turning away: 0.03 and 0.49
          widths/s); a face lost while moving sideways at ``leave_widths_per_s`` or faster may have left
          the camera's view, and whoever comes next is taken for someone new;
        * nobody else was seen steadily (3 frames or more) since it vanished, and this is the only new face
          of the frame: with a second person about, which of them came back cannot be told;
        * the new face is where the lost one was (within ``return_widths`` of its last box) and not much
          larger (``return_ratio``): the same spot, the same person at the same distance or farther back.

        Even then the new track's decision is only *held*: when it would be decided (:func:`ready`), its own
        readings at the site that decided the person must agree with the person's within ``return_agree_c``;
        only then is the decision dropped (``continues``). If they disagree, if it has too few readings there by
        its deadline, or if it leaves before that, it is decided as any new track is (one detection later than
        a new track would be: the tracker looks at the readings before the frame's own are taken).

        Why this cannot leave a visitor unscreened: a dropped decision is one whose readings the station *has*
        taken and found within 0.5 °C of skin (0.4-0.45 °C of body temperature, by either site's model) of the
        person's own; a fever (38.0 °C) lies at least 0.7 °C of body temperature above any ``normal`` (below
        37.3 °C), so a feverish newcomer taken for a returning person still gets a decision of their own, and
        one who reads like a person who raised an alarm finds the guard already called to the spot. What a wrong
        merge can cost is a count: a newcomer who steps into the spot within seconds of a person who turned away
        there, and reads the same, shares that person's decision. Whatever the rule is unsure of ends in a
        second decision, which at worst tells a person already screened to try again.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if self.settings.return_s > 0:
            self._note_decisions(self.tracks.values())
            self._settle_returns(t)
        live = [tr for tr in self.tracks.values() if t - tr.last_seen <= self.settings.max_gap_s
                and not self._gone_a_while(tr, t)]
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
        new = np.flatnonzero(ids == 0)
        for j in new:
            track = Track(self._next_id, t, t, boxes[j].copy())
            self.tracks[track.track_id] = track
            ids[j] = track.track_id
            self._next_id += 1
        if self.settings.return_s > 0 and len(new) == 1:
            self._hold_if_return(self.tracks[int(ids[new[0]])], t)
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
        """Tracks not seen for longer than the gap allows: those people have left. Removed here (and, with
        returns on, remembered for ``return_s`` in case one of them comes back)."""
        gone = [tr for tr in self.tracks.values() if t - tr.last_seen > self.settings.max_gap_s]
        for tr in gone:
            del self.tracks[tr.track_id]
        if self.settings.return_s > 0:
            self._note_decisions(gone)  # decided in the frame they ended
            keep = [tr for tr in self._gone if t - tr.last_seen <= self.settings.return_s]
            self._gone = keep + gone
        return gone

    # ------------------------------------------------------------------ returns
    def _note_decisions(self, tracks) -> None:
        """Note, once, the site that decided each newly decided track, as :func:`decide` chooses it (the
        canthi first); None when no site had enough readings: that decision was a ``retry``. The station
        decides after :meth:`update`, on the readings it then held, so the next call sees exactly those."""
        for track in tracks:
            if track.decided and not track.noted and track.held_for is None:
                track.noted = True
                track.decided_site = next((site for site in SITES
                                           if len(track.samples[site]) >= self.settings.min_samples), None)

    def _gone_a_while(self, track: Track, t: float) -> bool:
        """Whether ``track`` is a decided person whose face has been gone ``return_after_s`` or longer (with
        returns on): a face found there now is not simply theirs (the next visitor steps into the same
        spot, within ``max_gap_s`` too), it starts a track of its own, held as their return when it may be."""
        return (self.settings.return_s > 0 and track.decided and track.held_for is None
                and t - track.last_seen >= self.settings.return_after_s)

    def _returnable(self, track: Track, t: float) -> bool:
        """Whether ``track`` is a measured person whose face vanished, unclaimed, long enough ago but not too
        long, without walking off sideways."""
        s = self.settings
        width = max(float(track.box[2] - track.box[0]), 1e-9)
        return (track.noted and track.decided_site is not None and track.returned_as is None
                and s.return_after_s <= t - track.last_seen <= s.return_s
                and abs(float(track.velocity_px_s[0])) < s.leave_widths_per_s * width)

    def _hold_if_return(self, new: Track, t: float) -> None:
        """Hold ``new``'s decision when it may be a person coming back (the conditions in :meth:`update`)."""
        known = [tr for tr in (*self.tracks.values(), *self._gone) if tr is not new]
        best, best_shift = None, self.settings.return_widths
        for track in known:
            if not self._returnable(track, t):
                continue
            # someone else seen steadily (as many frames as a thermal-only track needs to be decided) since
            # it vanished: which of them came back cannot be told
            if any(other is not track and other.frames_seen >= 3 and other.last_seen > track.last_seen
                   for other in known):
                continue
            shift, ratio = shift_and_ratio(track.box, new.box)
            wider = (new.box[2] - new.box[0]) > (track.box[2] - track.box[0])
            if wider and ratio[0, 0] > self.settings.return_ratio:
                continue
            if shift[0, 0] < best_shift:
                best, best_shift = track, float(shift[0, 0])
        if best is not None:
            new.held_for, new.decided = best, True
            best.returned_as = new.track_id

    def _settle_returns(self, t: float) -> None:
        """Confirm or release each held return once it would be decided (its readings so far, at ``t``)."""
        for track in self.tracks.values():
            person = track.held_for
            if person is None:
                continue
            track.decided = False
            due = ready(track, t, self.settings)
            track.decided = True
            if not due:
                continue
            if self._agrees(track, person):
                track.held_for = None
                track.continues = person.continues or person.track_id
                track.noted, track.decided_site = True, person.decided_site
            else:
                self._release(track)

    def _agrees(self, track: Track, person: Track) -> bool:
        """Whether ``track`` reads as ``person`` did at the site that decided them: the medians of the
        best-resolved readings (as :func:`decide` takes them) within ``return_agree_c``. The person's
        median is over all their readings there, the best estimate of what they read: on the 14 kiosk
        recordings one person's 3-reading medians lie within about 0.4 °C of their whole stay's median in
        95 % of cases."""
        s = self.settings
        site = str(person.decided_site)
        mine, theirs = track.samples[site], person.samples[site]
        if len(mine) < s.min_samples or len(theirs) < s.min_samples:
            return False
        a = float(np.median([r.skin_c for r in best_resolved(mine, s.min_samples, s.best_share)]))
        b = float(np.median([r.skin_c for r in best_resolved(theirs, s.min_samples, s.best_share)]))
        return abs(a - b) <= s.return_agree_c

    @staticmethod
    def _release(track: Track) -> None:
        """Stop holding ``track``'s decision: the station decides it as any new track."""
        track.held_for, track.decided = None, False


def add_reading(track: Track, t: float, skin_c: float | None, quality: frozenset[str], near: bool = False,
                site: str = Site.CANTHUS, *, side_px: float = 0.0, u_sys_c: float = 0.0,
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
    verdict = Verdict(*level_of(None, reasons, Site.CANTHUS, None))
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
        return frozenset({Flag.TOO_FAR}) if track.first_measurable is None else frozenset({Flag.MOTION})
    top = max(track.flags.values())
    return frozenset(flag for flag, n in track.flags.items() if n >= top / 3)
