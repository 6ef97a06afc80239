"""Canthus measurement and per-person decisions, on synthetic thermal frames with known answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from station.screen.measure import (
    MeasureSettings,
    block_mean,
    canthus_centres,
    canthus_rois,
    forehead_mouth_rois,
    mean3x3,
    nose_offset,
    read_canthus,
    read_forehead_mouth,
    read_skin,
    several_faces,
)
from station.screen.track import Track, Tracker, TrackSettings, add_reading, decide, iou_matrix, ready


def face_frame(eye_distance: float = 16.0, canthus_c: float = 35.5, glasses: bool = False):
    """A 120x160 frame at 22 °C with a 34 °C face, hot 4x4 canthi where the measurement should look."""
    img = np.full((120, 160), 22.0, np.float32)
    cx, cy = 80.0, 50.0
    yy, xx = np.mgrid[0:120, 0:160]
    img[((xx - cx) / (eye_distance * 1.1)) ** 2 + ((yy - cy - 6) / (eye_distance * 1.5)) ** 2 < 1] = 34.0
    eyes = np.array([[cx - eye_distance / 2, cy], [cx + eye_distance / 2, cy]])
    for k, (x, y) in enumerate(canthus_centres(eyes)):
        img[int(round(y)) - 2 : int(round(y)) + 2, int(round(x)) - 2 : int(round(x)) + 2] = canthus_c - 0.2 * k
    if glasses:
        for x, y in eyes:
            img[int(y) - 3 : int(y) + 4, int(x) - 7 : int(x) + 8] = 24.5
    landmarks = np.array([*eyes, [cx, cy + 0.5 * eye_distance], [cx - 5, cy + 12], [cx + 5, cy + 12]])
    return img, landmarks


def test_rois_sit_a_quarter_eye_distance_inward():
    eyes = np.array([[100.0, 50.0], [140.0, 50.0]])
    centres = canthus_centres(eyes)
    assert np.allclose(centres, [[110, 50], [130, 50]])
    rois, side = canthus_rois(eyes)
    assert side == pytest.approx(10.0)
    assert np.allclose(rois[0], [105, 45, 115, 55])


def test_hotter_canthus_robust_max_is_the_reading():
    img, lm = face_frame()
    reading = read_canthus(img, mean3x3(img), lm, lm)
    assert reading.quality == frozenset()
    assert reading.apparent_c == pytest.approx(35.5, abs=1e-4)  # a 3x3 mean inside the 4x4 hot patch
    assert reading.hottest_px[0] < 80  # the left (hotter) canthus


def test_a_single_hot_pixel_is_not_a_canthus():
    img, lm = face_frame(canthus_c=34.0)
    img[50, 76] = 45.0  # one noisy pixel in the ROI
    reading = read_canthus(img, mean3x3(img), lm, lm)
    assert reading.apparent_c < 36.0


def test_too_far_when_the_roi_is_under_three_pixels():
    img, lm = face_frame(eye_distance=10.0)
    reading = read_canthus(img, mean3x3(img), lm, lm)
    assert reading.quality == {"too_far"} and reading.apparent_c is None


def test_off_axis_from_the_nose_offset():
    img, lm = face_frame()
    turned = lm.copy()
    turned[2, 0] += 0.35 * 16
    assert nose_offset(turned) == pytest.approx(0.35)
    assert read_canthus(img, mean3x3(img), lm, turned).quality == {"off_axis"}


def test_glasses_when_the_eyes_read_colder_than_the_cheeks():
    img, lm = face_frame(glasses=True)
    reading = read_canthus(img, mean3x3(img), lm, lm)
    assert reading.quality == {"glasses"} and reading.apparent_c is None


def test_several_faces_only_counts_faces_in_the_zone():
    # Two people side by side at the station, one far behind.
    ratio = MeasureSettings().nearby_face_ratio
    flags = several_faces(np.array([16.0, 15.0, 4.0]), np.array([True, True, False]), ratio)
    assert flags.tolist() == [True, True, False]
    alone = several_faces(np.array([16.0, 4.0]), np.array([True, False]), 0.6)
    assert alone.tolist() == [False, False]


def test_tracker_keeps_identity_and_ends_tracks():
    tracker = Tracker()
    a = tracker.update(0.0, np.array([[100, 100, 200, 220], [400, 100, 480, 200]]))
    b = tracker.update(0.1, np.array([[405, 102, 485, 202], [104, 101, 204, 221]]))
    assert b.tolist() == [a[1], a[0]]
    assert tracker.ended(0.2) == []
    gone = tracker.ended(0.1 + TrackSettings().max_gap_s + 0.01)
    assert sorted(t.track_id for t in gone) == sorted(a.tolist())
    assert iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0] == pytest.approx(1 / 3)


def level_of(skin, quality, site="canthus", u_skin=None):
    if skin is None:
        return "retry", None
    body = skin + 1.24
    return ("fever" if body >= 38.0 else "elevated" if body >= 37.3 else "normal"), body


def test_decided_after_three_readings_over_a_fifth_of_a_second():
    tracker = Tracker()
    [tid] = tracker.update(0.0, np.array([[0, 0, 10, 10]]))
    track = tracker.tracks[tid]
    for t, skin in [(0.0, 35.9), (0.115, 36.1), (0.23, 36.0)]:
        add_reading(track, t, skin, frozenset())
        if t < 0.2:
            assert not ready(track, t, TrackSettings())
    assert ready(track, 0.23, TrackSettings())
    decision = decide(track, 0.23, level_of)
    assert decision.skin_c == pytest.approx(36.0) and decision.level == "normal"
    assert decision.body_c == pytest.approx(37.24)
    assert not ready(track, 0.3, TrackSettings()), "decided once"


def test_spoiled_readings_give_retry_with_the_reason_within_a_second():
    tracker = Tracker()
    [tid] = tracker.update(0.0, np.array([[0, 0, 10, 10]]))
    track = tracker.tracks[tid]
    add_reading(track, 0.0, None, frozenset({"too_far"}))
    assert track.first_measurable is None
    for k in range(9):
        add_reading(track, 0.2 + 0.115 * k, None, frozenset({"glasses"}))
    assert track.first_measurable == pytest.approx(0.2)
    assert not ready(track, 1.15, TrackSettings())
    assert ready(track, 1.2, TrackSettings())
    decision = decide(track, 1.2, level_of)
    assert decision.level == "retry" and decision.quality == {"glasses"} and decision.skin_c is None


def test_one_reading_that_slips_through_among_glasses_frames_is_not_a_measurement():
    tracker = Tracker()
    [tid] = tracker.update(0.0, np.array([[0, 0, 10, 10]]))
    track = tracker.tracks[tid]
    for k in range(9):
        skin, quality = (34.1, frozenset()) if k == 4 else (None, frozenset({"glasses"}))
        add_reading(track, 0.115 * k, skin, quality)
    assert ready(track, 1.0, TrackSettings())
    decision = decide(track, 1.0, level_of)
    assert decision.level == "retry" and decision.skin_c is None and decision.quality == {"glasses"}


def test_approach_too_far_is_not_a_reason_but_standing_too_far_earns_a_retry():
    tracker = Tracker()
    [walker] = tracker.update(0.0, np.array([[0, 0, 10, 10]]))
    [stander] = tracker.update(0.0, np.array([[0, 0, 10, 10], [300, 0, 340, 40]]))[1:]
    for k in range(8):  # 0.8 s: the walker stays small in the distance, the stander stays near
        t = 0.1 * k
        add_reading(tracker.tracks[walker], t, None, frozenset({"too_far"}), near=False)
        add_reading(tracker.tracks[stander], t, None, frozenset({"too_far"}), near=True)
        tracker.tracks[walker].frames_seen += 1
        tracker.tracks[walker].last_seen = tracker.tracks[stander].last_seen = t
        tracker.tracks[stander].frames_seen += 1
    assert not tracker.tracks[walker].owes_retry()
    assert tracker.tracks[stander].owes_retry()
    decision = decide(tracker.tracks[stander], 1.0, level_of)
    assert decision.level == "retry" and decision.quality == {"too_far"}
    assert not tracker.tracks[stander].flags, "too_far before the face was ever measurable is not counted"


def test_tracker_follows_a_face_that_jumps_more_than_its_overlap_allows_but_not_to_a_neighbour():
    tracker = Tracker()
    [a, b] = tracker.update(0.0, np.array([[100, 100, 140, 150], [220, 100, 260, 150]]))
    # The first face jumps 0.6 of its width in one frame (IoU 0.25), the second stays.
    ids = tracker.update(0.07, np.array([[124, 102, 164, 152], [220, 100, 260, 150]]))
    assert ids.tolist() == [a, b]
    # A face as far as a neighbour's place (3 widths away) is somebody else.
    [c] = tracker.update(0.14, np.array([[400, 100, 440, 150]]))
    assert c not in (a, b)


def test_the_reading_is_the_hottest_pixel_when_the_kernel_is_one():
    img, lm = face_frame()
    img[49, 76] = 35.9  # a hot pixel inside the left canthus patch
    reading = read_canthus(img, block_mean(img, MeasureSettings().kernel_px), lm, lm)
    assert MeasureSettings().kernel_px == 1
    assert reading.apparent_c == pytest.approx(35.9)


# ------------------------------------------------------------------ the second site, for spectacle wearers
def glasses_face(forehead_c: float = 35.0, mouth_c: float = 35.4, eye_distance: float = 16.0):
    """A glasses wearer (lenses at 24.5 °C over the eyes) with known forehead and lip temperatures."""
    img, lm = face_frame(eye_distance=eye_distance, glasses=True)
    forehead, mouth = forehead_mouth_rois(lm)
    for box, c in ((forehead, forehead_c), (mouth, mouth_c)):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        img[int(round(cy)) - 1 : int(round(cy)) + 2, int(round(cx)) - 2 : int(round(cx)) + 3] = c
    return img, lm


def test_the_regions_sit_above_the_eyes_and_on_the_lips_whichever_way_up_the_face_is():
    _, lm = face_frame()
    forehead, mouth = forehead_mouth_rois(lm)
    eye_y, mouth_y, d = lm[0, 1], (lm[3, 1] + lm[4, 1]) / 2, 16.0
    assert forehead[3] == pytest.approx(eye_y - 0.55 * d) and forehead[1] == pytest.approx(eye_y - 1.05 * d)
    assert (mouth[1] + mouth[3]) / 2 == pytest.approx(mouth_y)
    flipped = lm * np.array([1.0, -1.0])  # upside down: "up" still points away from the mouth
    forehead_f, _ = forehead_mouth_rois(flipped)
    assert forehead_f[1] > -eye_y


def test_glasses_wearer_is_read_on_the_hottest_of_forehead_and_mouth():
    img, lm = glasses_face(forehead_c=35.0, mouth_c=35.4)
    assert read_canthus(img, img, lm, lm).quality == frozenset({"glasses"})
    reading = read_forehead_mouth(img, lm)
    assert reading.apparent_c == pytest.approx(35.4) and reading.reason is None
    assert reading.hottest_px[1] > lm[0, 1]  # on the lips, below the eyes
    img, lm = glasses_face(forehead_c=35.6, mouth_c=35.2)
    reading = read_forehead_mouth(img, lm)
    assert reading.apparent_c == pytest.approx(35.6) and reading.hottest_px[1] < lm[0, 1]


@pytest.mark.parametrize("forehead_c, mouth_c", [(35.0, 33.0), (32.0, 35.0)])
def test_a_covered_mouth_or_forehead_is_not_read(forehead_c, mouth_c):
    """A mask over the mouth (or a cap over the forehead) reads colder than bare skin ever differs."""
    img, lm = glasses_face(forehead_c=forehead_c, mouth_c=mouth_c)
    # the rest of the face is 34 °C: the covered region is painted over entirely
    forehead, mouth = forehead_mouth_rois(lm)
    box = mouth if mouth_c < forehead_c else forehead
    img[int(box[1]) : int(np.ceil(box[3])) + 1, int(box[0]) : int(np.ceil(box[2])) + 1] = min(forehead_c, mouth_c)
    assert read_forehead_mouth(img, lm).reason == "covered"


def test_a_face_cut_off_by_the_frame_or_too_small_is_not_read():
    img, lm = glasses_face()
    assert read_forehead_mouth(img[40:], lm - np.array([0.0, 40.0])).reason == "outside"  # the forehead cut off
    small = lm.copy()
    small[1] = small[0] + (small[1] - small[0]) * 0.3  # eyes 4.8 px apart: regions of 2.4 px
    assert read_forehead_mouth(img, small).reason == "small"


def test_a_track_decides_on_the_canthi_when_it_has_them_else_on_the_second_site():
    tracker = Tracker()
    [tid] = tracker.update(0.0, np.array([[0, 0, 10, 10]]))
    track = tracker.tracks[tid]
    for t, skin in [(0.0, 35.9), (0.115, 36.1), (0.23, 36.0)]:
        add_reading(track, t, skin, frozenset(), site="forehead_mouth")
    assert ready(track, 0.23, TrackSettings())
    seen = []
    decision = decide(track, 0.23, lambda s, q, site, u: (seen.append(site), level_of(s, q))[1])
    assert decision.site == "forehead_mouth" and seen == ["forehead_mouth"]
    assert decision.skin_c == pytest.approx(36.0)

    both = Track(2, 0.0, 0.0, np.zeros(4))
    for t in (0.0, 0.1, 0.2, 0.3):
        add_reading(both, t, 30.0, frozenset(), site="forehead_mouth")
        add_reading(both, t, 36.5, frozenset())
    decision = decide(both, 0.3, level_of)
    assert decision.site == "canthus" and decision.skin_c == pytest.approx(36.5), "never mixed, canthi first"


def test_a_face_lost_and_found_where_it_was_rejoins_its_track_when_allowed():
    """A bow: the prediction carried the box down, the face comes back up where it was last seen."""
    settings = TrackSettings(max_gap_s=2.5, max_predict_s=0.3, reacquire_widths=1.0)
    for reacquire, expected_tracks in ((settings, 1), (TrackSettings(max_gap_s=2.5, max_predict_s=0.3), 2)):
        tracker = Tracker(reacquire)
        [first] = tracker.update(0.0, np.array([[40, 40, 80, 90]]))
        tracker.update(0.1, np.array([[40, 52, 80, 102]]))  # moving down fast
        [again] = tracker.update(0.9, np.array([[41, 22, 81, 72]]))  # back up, 0.75 widths from its last box
        assert len(tracker.tracks) == expected_tracks and (again == first) == (expected_tracks == 1)
    tracker = Tracker(settings)
    tracker.update(0.0, np.array([[40, 40, 80, 90]]))
    [other] = tracker.update(0.5, np.array([[40, 40, 60, 65]]))  # half the size: someone else
    assert len(tracker.tracks) == 2


def test_readings_while_screening_is_paused_do_not_start_the_decision_clock():
    tracker = Tracker()
    [tid] = tracker.update(0.0, np.array([[0, 0, 10, 10]]))
    track = tracker.tracks[tid]
    add_reading(track, 0.0, None, frozenset({"blackbody_bad"}))
    assert track.first_measurable == 0.0 and track.first_screenable is None
    assert not ready(track, 5.0, TrackSettings()), "the visitor's second is not used up by the pause"
    add_reading(track, 5.0, 35.5, frozenset())
    assert track.first_screenable == 5.0 and ready(track, 6.0, TrackSettings())
    assert track.owes_retry(min_frames=1), "a paused visitor who leaves is still told"


def test_read_skin_falls_back_to_the_second_site_only_for_glasses_alone():
    img, lm = glasses_face(forehead_c=35.0, mouth_c=35.4)
    assert read_skin(img, img, lm, lm).quality == frozenset({"glasses"})  # no second site asked for
    reading = read_skin(img, img, lm, lm, glasses_site=True)
    assert reading.site == "forehead_mouth" and reading.quality == frozenset()
    assert reading.apparent_c == pytest.approx(35.4)
    turned = lm.copy()
    turned[2, 0] += 8.0  # nose far off the eye midpoint: off axis, and no other site helps that
    assert read_skin(img, img, turned, turned, glasses_site=True).quality == frozenset({"off_axis"})
    plain, plain_lm = face_frame()
    assert read_skin(plain, plain, plain_lm, plain_lm, glasses_site=True).site == "canthus"


# ------------------------------------------------------------------ where the canthus is best resolved
def test_a_person_still_approaching_is_decided_on_the_closest_readings():
    """A hot spot reads higher as more pixels span it: wait while the face grows, decide on the nearest."""
    track = Track(1, 0.0, 0.0, np.array([0, 0, 10, 10], float))
    settings = TrackSettings()
    # walking up: the canthus ROI grows 3 -> 6 px over 0.7 s and the reading climbs with it
    for k in range(8):
        t = 0.1 * k
        add_reading(track, t, 35.0 + 0.05 * k, frozenset(), side_px=3.0 + 0.43 * k)
        if t < 0.65:
            assert not ready(track, t, settings), f"decided at {t:.1f} s while still approaching"
    # stands still at the mark: the face stops growing, the decision comes
    for k in range(8, 12):
        add_reading(track, 0.1 * k, 35.4, frozenset(), side_px=6.0)
    assert ready(track, 1.1, settings)
    decision = decide(track, 1.1, level_of, settings.min_samples, settings.best_share)
    assert decision.skin_c == pytest.approx(35.4)  # the far, low readings are left out


def test_a_walker_who_never_stops_is_decided_within_the_budget():
    track = Track(1, 0.0, 0.0, np.array([0, 0, 10, 10], float))
    settings = TrackSettings()
    add_reading(track, 0.0, 35.0, frozenset(), side_px=3.0)
    track.first_screenable = 0.0
    t = 0.0
    while not ready(track, t, settings):
        t += 0.1
        add_reading(track, t, 35.0 + t, frozenset(), side_px=3.0 * (1 + t))
    assert t <= settings.settle_wait_s + 0.1 + 1e-9  # within a frame of the wait, inside the 1 s budget


def test_advice_to_step_closer_never_withholds_a_reading():
    track = Track(1, 0.0, 0.0, np.array([0, 0, 10, 10], float))
    add_reading(track, 0.0, 35.2, frozenset({"step_closer"}), side_px=3.5)
    assert [r.skin_c for r in track.samples["canthus"]] == [35.2] and not track.flags


# ------------------------------------------------------------------ one person, one decision, at a kiosk
KIOSK_TRACKS = TrackSettings(max_gap_s=2.5, max_predict_s=0.3, reacquire_widths=1.0, return_s=5.0)  # thermal-only
FRAME_S = 0.114  # a Lepton's 8.8 Hz
SPOT = (40.0, 40.0, 80.0, 90.0)  # a face at the measuring spot, 40 px wide


def face(box=SPOT, skin=None, quality=(), width=None, dx=0.0):
    """One face in one frame: its box (resized about its centre to ``width``, moved ``dx``), reading, flags."""
    x1, y1, x2, y2 = box
    if width is not None:
        cx, cy, scale = (x1 + x2) / 2, (y1 + y2) / 2, width / (x2 - x1)
        x1, x2, y1, y2 = cx - width / 2, cx + width / 2, cy - (y2 - y1) * scale / 2, cy + (y2 - y1) * scale / 2
    return (np.array([x1 + dx, y1, x2 + dx, y2]), skin, frozenset(quality))


def stay(t0, seconds, make):
    """Frames from ``t0`` for ``seconds``: ``make(k)`` gives the faces of the k-th."""
    return [(t0 + k * FRAME_S, make(k)) for k in range(int(round(seconds / FRAME_S)))]


def at_spot(skin):
    return lambda k: [face(skin=skin + (0.1 if k % 2 else -0.1))]


def kiosk(frames, settings=KIOSK_TRACKS):
    """The decisions a thermal-only station makes from scripted faces, in the station's order: track, read,
    decide what is ready (after 3 detections), then give ended tracks that owe one a ``retry``."""
    tracker, decisions = Tracker(settings), []

    def close(now, t):
        for track in tracker.ended(now):
            if track.owes_retry(min_stand_s=settings.min_stand_s):
                decisions.append(decide(track, t, level_of, settings.min_samples, settings.best_share))

    for t, faces in frames:
        ids = tracker.update(t, np.array([f[0] for f in faces]).reshape(-1, 4))
        for tid, (box, skin, quality) in zip(ids, faces, strict=True):
            add_reading(tracker.tracks[int(tid)], t, skin, quality, near=True, side_px=(box[2] - box[0]) / 8)
        for track in tracker.tracks.values():
            if track.frames_seen >= 3 and ready(track, t, settings):
                decisions.append(decide(track, t, level_of, settings.min_samples, settings.best_share))
        close(t, t)
    close(float("inf"), frames[-1][0])  # the end of the recording: everyone left
    return decisions


def steps_back_and_returns(away_s, skin_back=35.5, back_quality=()):
    """Measured at the spot, steps back (the face shrinks, too far), gone ``away_s``, walks up again."""
    frames = stay(0.0, 1.5, at_spot(35.5))
    frames += stay(1.5, 0.4, lambda k: [face(width=36 - 4 * k, quality={"too_far"})])
    t = frames[-1][0] + away_s
    frames += stay(t, 0.4, lambda k: [face(width=20 + 5 * k, quality={"too_far"})])
    frames += stay(t + 0.4, 1.5, lambda k: [face(skin=skin_back + (0.1 if k % 2 else -0.1),
                                                 quality=back_quality)])
    return frames


@pytest.mark.parametrize("away_s", [2.0, 3.0, 4.0])
def test_a_person_who_steps_back_out_of_the_zone_and_returns_is_one_decision(away_s):
    """Gone longer than a track may vanish (2.5 s) or back at another size: still one person, one decision."""
    decisions = kiosk(steps_back_and_returns(away_s))
    assert [d.level for d in decisions] == ["normal"]
    if away_s > KIOSK_TRACKS.max_gap_s:
        without = kiosk(steps_back_and_returns(away_s), dataclasses.replace(KIOSK_TRACKS, return_s=0.0))
        assert len(without) == 2, "the failure the rule is for: a second decision for the same person"


def test_a_return_is_only_confirmed_by_its_own_readings_else_it_is_decided_again():
    """A face back at the spot that reads 1.4 °C warmer is not the person who left (it is a fever); one that
    never faces the camera again, but stood there, is told to retry rather than pass unremarked."""
    warmer = kiosk(steps_back_and_returns(3.0, skin_back=36.9))
    assert [d.level for d in warmer] == ["normal", "fever"]
    turned = kiosk(steps_back_and_returns(3.0, back_quality={"off_axis"}))
    assert [d.level for d in turned] == ["normal", "retry"]


def leaves_then_next(leaving, next_skin=35.5, gap_s=1.0):
    """Person A measured at the spot, leaves (``leaving``: frames from 1.5 s), B at the spot ``gap_s`` later."""
    frames = stay(0.0, 1.5, at_spot(35.5)) + leaving
    return frames + stay(frames[-1][0] + gap_s, 1.5, at_spot(next_skin))


def test_two_people_one_second_apart_are_two_decisions():
    # A walks on past the camera (its face carried sideways at 1.3 widths/s until lost, half a width from the
    # spot): whoever comes next is new, even at the same temperature
    walks_off = stay(1.5, 0.3, lambda k: [face(dx=6.0 * (k + 1), quality={"off_axis"})])
    assert [d.level for d in kiosk(leaves_then_next(walks_off))] == ["normal", "normal"]
    unaware = dataclasses.replace(KIOSK_TRACKS, leave_widths_per_s=float("inf"))
    assert len(kiosk(leaves_then_next(walks_off), unaware)) == 1, "what tells them apart is the walk"
    # A turns away at the spot (lost where it stood); B steps in a second later with a fever: B's own alarm
    assert [d.level for d in kiosk(leaves_then_next([], next_skin=36.9))] == ["normal", "fever"]
    # A third person seen steadily at the side while A was gone: which one came back cannot be told
    frames = stay(0.0, 1.5, at_spot(35.5))
    frames += stay(1.6, 0.5, lambda k: [face(dx=90.0, width=16, quality={"too_far"})])
    frames += stay(2.8, 1.5, at_spot(35.5))
    assert [d.level for d in kiosk(frames)] == ["normal", "normal"]


def test_a_person_told_to_retry_who_comes_back_is_measured_afresh():
    """``retry`` asks for a second try: the return of someone sent away (glasses) is decided again."""
    frames = stay(0.0, 1.5, lambda k: [face(quality={"glasses"})])
    frames += stay(frames[-1][0] + 2.0, 1.5, at_spot(35.5))  # glasses off, back at the spot
    assert [d.level for d in kiosk(frames)] == ["retry", "normal"]
