"""Thermal-only screening: faces found in the thermal frames of real kiosk recordings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from station.cli.main import main
from station.screen.thermal_faces import ThermalFaceSettings, one_box_per_head, skin_like, to_grey8
from station.types import Faces

KIOSK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kiosk-cptv"


@pytest.fixture(scope="module")
def kiosk() -> Path:
    if not (KIOSK / "labels.csv").is_file():  # a fresh clone without ../shared; CI always has it
        pytest.skip(f"needs the real kiosk recordings in {KIOSK} (../shared/data beside the repository)")
    return KIOSK


def _screen(kiosk: Path, tmp_path: Path, name: str, *extra: str, system: list | None = None) -> list[dict]:
    out = tmp_path / Path(name).stem
    runner = CliRunner()
    assert runner.invoke(main, ["import", str(kiosk / name), str(out)]).exit_code == 0
    result = runner.invoke(main, ["run", "--recording", str(out), "--headless", "--fast", "--db",
                                  str(tmp_path / "station.db"), *extra])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    if system is not None:
        system.extend(line for line in lines if line["type"] == "system")
    return [line for line in lines if line["type"] == "screening"]


def test_three_people_at_an_unreferenced_kiosk_are_three_decisions_and_no_temperature(kiosk, tmp_path, face_model):
    """Without its disc's temperature a Lepton (+-5 °C) gives no absolute number: everyone counted, nobody
    called normal, and the start says why."""
    system: list[dict] = []
    decisions = _screen(kiosk, tmp_path, "TKO8-810440-2021-03-23T22:40:09.052Z.cptv", system=system)
    assert [d["level"] for d in decisions] == ["retry", "retry", "retry"]
    assert all(d["quality"] == ["unreferenced"] and d["body_c"] is None for d in decisions)
    assert any(line["kind"] == "unreferenced" for line in system)


def test_a_spectacle_wearer_at_a_kiosk_is_measured_on_the_forehead_and_mouth(kiosk, tmp_path, face_model):
    """The lenses read near room temperature (the canthi are hidden), so the station reads the second site,
    with its own body model, instead of sending the person away to remove their glasses."""
    [decision] = _screen(kiosk, tmp_path, "fs-1220-816619-2021-03-31T21:19:04.180Z.cptv", "--reference-c", "35.8")
    assert decision["site"] == "forehead_mouth" and decision["level"] == "normal"
    assert 32.0 < decision["skin_c"] < 37.0 and decision["quality"] == []
    assert 0.3 < decision["u95_c"] < 1.5


def test_an_empty_kiosk_recording_raises_nothing(kiosk, tmp_path, face_model):
    assert _screen(kiosk, tmp_path, "fs-1220-814675-2021-03-28T23:26:49.781Z.cptv") == []


def test_the_window_maps_the_room_and_skin_to_the_same_grey_whatever_else_is_in_view():
    frame = np.full((160, 120), 22.0, np.float32)
    frame[40:80, 40:80] = 33.0  # a face
    settings = ThermalFaceSettings(scale=1.0)
    plain = to_grey8(frame, settings)
    frame[150:156, 10:16] = 45.0  # a hot reference disc in the corner
    with_disc = to_grey8(frame, settings)
    assert plain[60, 60] == with_disc[60, 60] == int((33 - 22) / 12 * 255)  # the same grey either way


def test_only_warm_skin_counts_as_a_face():
    frame = np.full((160, 120), 22.0, np.float32)
    frame[20:60, 20:60] = 34.5  # a face
    frame[90:130, 60:100] = 23.0  # a poster of a face: room temperature
    boxes = np.array([[20, 20, 60, 60], [60, 90, 100, 130]], np.float32)
    faces = Faces(xyxy=boxes, score=np.array([0.9, 0.9], np.float32),
                  landmarks=np.zeros((2, 5, 2), np.float32))
    assert skin_like(frame, faces, ThermalFaceSettings()).tolist() == [True, False]


def test_the_reference_disc_is_the_warm_round_spot_that_does_not_move():
    from station.acquire.reference_disc import find_reference_disc

    yy, xx = np.mgrid[0:160, 0:120]
    frames = []
    for k in range(20):
        frame = np.full((160, 120), 22.0, np.float32)
        frame[(xx - 30) ** 2 + (yy - 130) ** 2 <= 16] = 34.0  # the disc, steady
        frame[10:14, 5:115] = 45.0  # a hot pipe: warmer, steady, but a streak
        frame[60:100, 10 + 4 * k : 40 + 4 * k] = 35.0  # a person walking across
        frames.append(frame)
    disc = find_reference_disc(np.array(frames))
    assert disc is not None and abs(disc.centre[0] - 30) < 1 and abs(disc.centre[1] - 130) < 1
    x1, y1, x2, y2 = disc.roi
    assert x1 <= 30 < x2 and y1 <= 130 < y2 and np.all(np.array(frames)[:, y1:y2, x1:x2] == 34.0)


def test_a_kiosk_is_corrected_by_its_own_reference_disc(kiosk, tmp_path, face_model):
    out = tmp_path / "tko8"
    runner = CliRunner()
    source = kiosk / "TKO8-810440-2021-03-23T22:40:09.052Z.cptv"
    assert runner.invoke(main, ["import", str(source), str(out)]).exit_code == 0
    result = runner.invoke(main, ["run", "--recording", str(out), "--headless", "--fast", "--reference-c", "35.8",
                                  "--db", str(tmp_path / "station.db")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert "reference disc at (24, 130, 29, 135) held at 35.8" in lines[0]["detail"]  # the TKO8 disc
    assert any(line.get("kind") == "blackbody_ok" for line in lines)
    decisions = [line for line in lines if line["type"] == "screening"]
    assert [d["level"] for d in decisions] == ["normal"] * 3
    assert all(35.5 < d["body_c"] < 37.5 for d in decisions)  # healthy people, once the disc corrects the Lepton


def test_a_spectacle_wearer_in_a_warm_room_still_reads_like_skin():
    """Lenses read near the room and cover the face's centre; the canthi, lips and forehead stay warm."""
    frame = np.full((160, 120), 29.5, np.float32)  # a warm room
    frame[30:80, 35:85] = 33.0  # the face
    frame[45:58, 38:82] = 30.0  # the lenses, across the middle of the box
    frame[62:70, 55:65] = 31.0  # the cool nose
    face = Faces(xyxy=np.array([[35, 30, 85, 80]], np.float32), score=np.array([0.8], np.float32),
                 landmarks=np.zeros((1, 5, 2), np.float32))
    assert skin_like(frame, face, ThermalFaceSettings()).tolist() == [True]
    frame[30:80, 35:85] = 30.5  # a face-shaped poster one degree above the room
    assert skin_like(frame, face, ThermalFaceSettings()).tolist() == [False]


def test_a_bowed_head_seen_twice_is_one_box_but_two_people_stay_two():
    def faces(*rows):
        boxes = np.array([r[:4] for r in rows], np.float32)
        return Faces(xyxy=boxes, score=np.array([r[4] for r in rows], np.float32),
                     landmarks=np.zeros((len(rows), 5, 2), np.float32))

    settings = ThermalFaceSettings()
    # the face, and the crown of the same head 0.64 widths above it at nearly the same size (IoU 0.24)
    bowed = faces((40, 60, 77, 105, 0.45), (39, 36, 79, 83, 0.39))
    assert one_box_per_head(bowed, settings).score.tolist() == pytest.approx([0.45])
    # a person beside, a head's width away, and one far behind (much smaller), are people
    beside = faces((40, 60, 77, 105, 0.45), (80, 58, 117, 103, 0.5), (50, 20, 62, 36, 0.4))
    assert len(one_box_per_head(beside, settings)) == 3
    # the same face found in both polarities overlaps: the better one stays
    both = faces((40, 60, 77, 105, 0.45), (42, 61, 78, 104, 0.81))
    assert one_box_per_head(both, settings).score.tolist() == pytest.approx([0.81])


# ------------------------------------------------------------------ one person, one decision
def _splice(src: Path, dst: Path, pieces: list[tuple[int, int | None]]) -> Path:
    """A copy of the imported recording ``src`` made of ``pieces`` ([start, stop) frame ranges), re-timed at its
    frame interval; each later piece shifted by a constant so the reference disc reads on across the cut (as
    the Lepton's slow drift leaves it: a jump would pause screening)."""
    from station.acquire.reference_disc import find_reference_disc

    frames = np.load(src / "thermal.npy")
    disc = find_reference_disc(frames[:60:3].astype(np.float32) / 100.0 - 273.15)
    x1, y1, x2, y2 = disc.roi
    parts: list[np.ndarray] = []
    for start, stop in pieces:
        part = frames[start:stop].astype(np.int32)
        if parts:
            before, after = parts[-1][-1, y1 : y2 + 1, x1 : x2 + 1], part[0, y1 : y2 + 1, x1 : x2 + 1]
            part += int(round(float(np.median(before)) - float(np.median(after))))
        parts.append(part)
    out = np.concatenate(parts).astype(np.uint16)
    dst.mkdir()
    np.save(dst / "thermal.npy", out)
    meta = json.loads((src / "meta.json").read_text())
    meta["thermal"]["frames"] = len(out)
    (dst / "meta.json").write_text(json.dumps(meta))
    dt = 1.0 / meta["thermal"]["fps"]
    (dst / "frames.csv").write_text("stream,index,t\n" + "".join(f"thermal,{k},{k * dt:.4f}\n"
                                                                for k in range(len(out))))
    return dst


def _screen_spliced(kiosk: Path, tmp_path: Path, name: str, pieces, reference_c: float) -> list[dict]:
    imported = tmp_path / "imported"
    runner = CliRunner()
    assert runner.invoke(main, ["import", str(kiosk / name), str(imported)]).exit_code == 0
    spliced = _splice(imported, tmp_path / "spliced", pieces)
    result = runner.invoke(main, ["run", "--recording", str(spliced), "--headless", "--fast", "--reference-c",
                                  str(reference_c), "--db", str(tmp_path / "station.db")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    return [line for line in lines if line["type"] == "screening"]


@pytest.mark.parametrize(("name", "reference_c", "stay", "empty", "away_s"), [
    ("20210324-134824.cptv", 36.6, 60, 128, 3.0),  # read at the canthi
    ("fs-1228-815076-2021-03-29T15:35:10.096Z.cptv", 37.0, 62, 70, 4.0),  # glasses: forehead and mouth
])
def test_a_kiosk_visitor_who_steps_out_of_view_and_comes_back_is_one_decision(
        kiosk, tmp_path, face_model, name, reference_c, stay, empty, away_s):
    """Real frames: the visitor, measured, vanishes where they stood (the recording jumps to frames of the
    empty kiosk) for longer than a track may vanish (2.5 s), and is back at the spot: one person, one decision."""
    away = int(round(away_s / 0.114))  # frames of the empty kiosk, at the Lepton's 8.8 Hz
    decisions = _screen_spliced(kiosk, tmp_path, name, [(0, stay), (empty, empty + away), (stay, None)],
                                reference_c)
    assert len(decisions) == 1 and decisions[0]["skin_c"] is not None  # one decision, with a temperature


def test_two_people_in_succession_at_the_same_spot_are_two_decisions(kiosk, tmp_path, face_model):
    """Real frames: the first visitor of 052519 vanishes where he stood (cut before he walks off) and the
    second appears 1.5 s later on his way to the same spot. The new face is where the first was lost, but
    its readings (warmer at the canthi by more than one person's readings vary) are not his: two people, two
    decisions."""
    from station.screen.track import TrackSettings

    decisions = _screen_spliced(kiosk, tmp_path, "20210324-052519.cptv", [(0, 50), (62, 75), (96, 161)], 37.0)
    assert len(decisions) == 2 and all(d["skin_c"] is not None for d in decisions)
    assert decisions[1]["skin_c"] - decisions[0]["skin_c"] > TrackSettings().return_agree_c
