"""The skin-to-body model: fitting, validation by subject, figures, files, and the commands on real people."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from cli_checks import one_line_error
from click.testing import CliRunner

from station.cli.body_model import body_model
from station.errors import StationError
from station.fitting.fda import FDA_DATA_SET, FdaData, read_fda_csv
from station.fitting.fit import _fit_linear, cross_validate, fit, predict_data, subject_folds
from station.fitting.metrics import figures, roc_auc, sensitivity_at_specificity
from station.screen import body_model as bm

FDA_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fda-facial-oral" / "FLIR_groups1and2.csv"
NO_FDA = f"needs the FDA facial/oral data in ../shared/data/fda-facial-oral beside the repository ({FDA_CSV})"
needs_fda = pytest.mark.skipif(not FDA_CSV.is_file(), reason=NO_FDA)

COLUMNS = (["SubjectID", ""] + [f"canthiMax{k}" for k in range(1, 5)] + [f"T_FHC_Max{k}" for k in range(1, 5)]
           + ["aveOralF", "aveOralM", "Gender", "T_atm", "Humidity", "Distance", "Date"])


def write_fda_csv(path: Path, rows: list[dict], columns: list[str] = COLUMNS) -> Path:
    """A CSV in the study's layout: two header rows of decoration, then the column names, then subjects."""
    with open(path, "w", newline="", encoding="utf-8-sig") as out:
        writer = csv.writer(out)
        writer.writerow(["", "", "Round 1:"] + [""] * (len(columns) - 3))
        writer.writerow([""] * len(columns))
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
    return path


def synthetic_rows(n: int = 400, seed: int = 1, noise: float = 0.05) -> list[dict]:
    """People whose oral temperature is exactly 37 + 0.8 (canthus - 35.5) - 0.06 (ambient - 24) + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        canthus = rng.normal(35.5, 0.5)
        ambient = rng.uniform(20, 28)
        oral = 37.0 + 0.8 * (canthus - 35.5) - 0.06 * (ambient - 24.0) + rng.normal(0, noise)
        jitter = rng.normal(0, 0.02, 4)
        forehead = canthus - 1.5 + rng.normal(0, 0.3)
        rows.append({"SubjectID": f"s{i:04d}", **{f"canthiMax{k + 1}": f"{canthus + jitter[k]:.3f}" for k in range(4)},
                     **{f"T_FHC_Max{k + 1}": f"{forehead + jitter[k]:.3f}" for k in range(4)},
                     "aveOralM": f"{oral:.3f}", "T_atm": f"{ambient:.2f}", "Distance": "0.7", "Date": "17-03-01"})
    return rows


@pytest.fixture(scope="module")
def fda() -> FdaData:
    if not FDA_CSV.is_file():
        pytest.skip(NO_FDA)
    return read_fda_csv(FDA_CSV)


# --------------------------------------------------------------------------------------------- fitting
def test_fit_recovers_known_coefficients(tmp_path):
    data = read_fda_csv(write_fda_csv(tmp_path / "synthetic.csv", synthetic_rows()))
    model = fit(data, ("ambient",))
    assert model.coefficients["canthus"] == pytest.approx(0.8, abs=0.02)
    assert model.coefficients["ambient"] == pytest.approx(-0.06, abs=0.005)
    assert model.predict(35.5, 24.0) == pytest.approx(37.0, abs=0.02)
    assert model.provenance["n_subjects"] == 400
    cv = model.provenance["cross_validation"]
    assert cv["model"]["mae_c"] < 0.06 < cv["baseline"]["mae_c"]


def test_ridge_pulls_towards_the_constant_offset(tmp_path):
    data = read_fda_csv(write_fda_csv(tmp_path / "synthetic.csv", synthetic_rows()))
    slopes = [fit(data, ("ambient",), ridge=r).coefficients["canthus"] for r in (0.0, 1.0, 1e6)]
    assert slopes[0] < slopes[1] < slopes[2]
    assert slopes[1] == pytest.approx((slopes[0] + 1.0) / 2, abs=0.03), "ridge 1 lands about half-way"
    assert slopes[2] == pytest.approx(1.0, abs=1e-3)


def test_only_what_the_station_measures_can_be_a_model_input(tmp_path):
    data = read_fda_csv(write_fda_csv(tmp_path / "synthetic.csv", synthetic_rows(60)))
    with pytest.raises(StationError, match="'forehead'.*does not measure it"):
        fit(data, ("forehead",))
    assert cross_validate(data, ("forehead",)).model.n == 60, "but cross-validation may try it"


# --------------------------------------------------------------------------------------------- figures
def test_auc_of_perfectly_separated_data_is_one_and_of_reversed_zero():
    positive = np.array([False] * 5 + [True] * 3)
    scores = np.arange(8.0)
    assert roc_auc(scores, positive) == 1.0
    assert roc_auc(-scores, positive) == 0.0
    assert roc_auc(np.ones(8), positive) == 0.5, "all tied: a half"
    assert math.isnan(roc_auc(scores, np.zeros(8, dtype=bool)))


def test_auc_matches_counting_every_pair():
    rng = np.random.default_rng(4)
    scores = np.round(rng.normal(size=300), 1)  # many ties
    positive = rng.random(300) < 0.2
    pairs = scores[positive][:, None] - scores[~positive][None, :]
    expected = ((pairs > 0).sum() + 0.5 * (pairs == 0).sum()) / pairs.size
    assert roc_auc(scores, positive) == pytest.approx(expected, abs=1e-12)


def test_figures_classify_as_the_station_does():
    oral = np.array([36.5, 36.9, 37.6, 38.2])
    body = np.array([36.6, 37.3, 37.29999999, 38.0])  # 37.29999999 rounds to 37.30: elevated
    fig = figures(body, oral, (37.3, 38.0))
    assert (fig.positives, fig.sens_elevated, fig.spec_elevated) == (2, 1.0, 0.5)
    assert (fig.sens_fever, fig.spec_fever) == (0.5, 1.0)
    assert fig.mae_c == pytest.approx(np.mean(np.abs(body - oral)))


def test_sensitivity_at_equal_specificity_moves_the_threshold():
    positive = np.array([False] * 10 + [True] * 4)
    body = np.array([36.0, 36.1, 36.2, 36.3, 36.4, 36.5, 36.6, 36.7, 36.8, 37.45, 37.2, 37.4, 37.5, 37.6])
    sens, spec, threshold = sensitivity_at_specificity(body, positive, 0.9)  # one false alarm allowed
    assert (sens, spec) == (1.0, 0.9)
    assert np.all((body >= threshold) == (body > 36.8))
    sens, spec, _ = sensitivity_at_specificity(body, positive, 1.0)
    assert (sens, spec) == (0.5, 1.0)


# --------------------------------------------------------------------------------------------- validation
def test_folds_by_subject_keep_every_subject_in_one_fold():
    ids = np.array([f"p{i % 37}" for i in range(200)])  # subjects with several rows each
    fold = subject_folds(ids, 10, seed=3)
    for subject in np.unique(ids):
        assert len(set(fold[ids == subject])) == 1
    assert sorted(set(fold)) == list(range(10))
    assert np.array_equal(fold, subject_folds(ids, 10, seed=3)), "a fixed seed gives fixed folds"


def test_cross_validation_never_trains_on_a_held_out_subject(tmp_path, monkeypatch):
    data = read_fda_csv(write_fda_csv(tmp_path / "synthetic.csv", synthetic_rows(120)))
    trained_on: list[set[str]] = []
    real_fit = _fit_linear

    def spy(train, features, ridge):
        trained_on.append(set(train.subject_id))
        return real_fit(train, features, ridge)

    monkeypatch.setattr("station.fitting.fit._fit_linear", spy)
    cv = cross_validate(data, ("ambient",), folds=10, seed=5)
    assert len(trained_on) == 10
    for k, seen in enumerate(trained_on):
        held_out = set(data.subject_id[cv.fold == k])
        assert held_out and not (held_out & seen)
        assert held_out | seen == set(data.subject_id)


# --------------------------------------------------------------------------------------------- the model
def _model(**changes) -> bm.BodyModel:
    values = {"name": "test-linear", "version": 1, "features": ("canthus", "ambient"), "intercept_c": 37.0,
              "coefficients": {"canthus": 0.8, "ambient": -0.05}, "centres": {"canthus": 35.8, "ambient": 24.0},
              "ranges": {"ambient": (20.0, 29.0)},
              "provenance": {"data_set": "test", "n_subjects": 3, "fitted": "2026-01-01"}}
    return bm.BodyModel(**{**values, **changes})


def test_predict_scalar_and_vector_agree_and_missing_inputs_fall_back_to_the_mean():
    model = _model()
    assert model.predict(36.3, 24.0) == pytest.approx(37.4)
    assert model.predict(36.3) == model.predict(36.3, 24.0) == model.predict(36.3, math.nan)
    assert model.predict(36.3, 22.0) == pytest.approx(37.5)
    assert model.predict(36.3, 10.0) == model.predict(36.3, 20.0), "ambient is clamped to the training range"
    vector = model.predict(np.array([36.3, 36.3, 36.3]), np.array([22.0, math.nan, 10.0]))
    assert vector == pytest.approx([37.5, 37.4, model.predict(36.3, 20.0)])
    assert isinstance(model.predict(36.3, 22.0, 0.7), float), "distance is ignored by a model without it"


def test_model_json_round_trips_and_has_a_short_id():
    model = _model()
    again = bm.BodyModel.from_json(model.to_json())
    assert again == model and again.id == model.id
    assert re.fullmatch(r"test-linear-v1@[0-9a-f]{12}", model.id)
    assert _model(intercept_c=37.1).id != model.id
    assert _model(provenance={"data_set": "x", "n_subjects": 9, "fitted": "2026-02-02"}).id == model.id


@pytest.mark.parametrize(("edit", "named"), [
    (lambda d: d.pop("coefficients"), "coefficients: missing"),
    (lambda d: d["coefficients"].update(ambient="warm"), "coefficients.ambient: expected a finite number"),
    (lambda d: d["coefficients"].update(canthus=7.0), "coefficients.canthus: expected 0.2 to 2"),
    (lambda d: d.update(features=["canthus", "age"]), "features: expected 'canthus' then"),
    (lambda d: d["ranges"].update(ambient=[29, 20]), "ranges.ambient: expected low <= high"),
    (lambda d: d.update(schema_version=2), "schema_version: expected 1"),
    (lambda d: d.update(colour="red"), "unknown key 'colour'"),
    (lambda d: d["provenance"].pop("n_subjects"), "provenance.n_subjects"),
    (lambda d: d.update(intercept_c=37.2), "id: the file says"),
])
def test_a_corrupt_model_file_is_one_line_naming_the_key(tmp_path, edit, named):
    doc = json.loads(_model().to_json())
    edit(doc)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(StationError) as info:
        bm.load_model(path)
    message = str(info.value)
    assert named in message and str(path) in message and "\n" not in message


def test_a_model_file_that_is_not_json_is_one_line(tmp_path):
    path = tmp_path / "model.json"
    path.write_text('{"schema_version": 1, "name": ', encoding="utf-8")
    with pytest.raises(StationError, match=r"model.json: not valid JSON \(.* line 1"):
        bm.load_model(path)


# --------------------------------------------------------------------------------------------- reading data
def test_a_file_not_in_the_layout_names_the_missing_column(tmp_path):
    columns = [c for c in COLUMNS if c != "aveOralM"]
    path = write_fda_csv(tmp_path / "other.csv", synthetic_rows(5), columns)
    with pytest.raises(StationError, match="no column 'aveOralM' in the header"):
        read_fda_csv(path)


def test_fahrenheit_is_refused_and_a_typed_distance_is_read_as_missing(tmp_path):
    rows = synthetic_rows(5)
    rows[2]["Distance"] = "79"
    data = read_fda_csv(write_fda_csv(tmp_path / "a.csv", rows), ("canthus", "ambient"))
    assert math.isnan(data.distance[2]) and "s0002: 79" in data.notes[0]
    rows[3]["aveOralM"] = "98.6"  # one typo in the reference costs that subject, named
    data = read_fda_csv(write_fda_csv(tmp_path / "b.csv", rows), ("canthus", "ambient"))
    assert "s0003" not in data.subject_id and data.left_out == (("s0003", "aveOralM 98.6"),)
    for row in rows:  # a file in Fahrenheit throughout leaves nothing: refused, saying why
        row["aveOralM"] = f"{float(row['aveOralM']) * 9 / 5 + 32:.1f}"
    with pytest.raises(StationError, match=r"c.csv: nothing usable: .*5 subjects left out .*s0000 \(aveOralM 9\d\.\d"
                                           r".*plausible: aveOralM 30 to 45 °C"):
        read_fda_csv(write_fda_csv(tmp_path / "c.csv", rows), ("canthus", "ambient"))


# --------------------------------------------------------------------------------------------- the commands
def test_bad_inputs_are_one_line_each(tmp_path):
    runner = CliRunner()
    missing = tmp_path / "nowhere.csv"
    line = one_line_error(runner.invoke(body_model, ["fit", str(missing), "--out", str(tmp_path / "m.json")]))
    assert "nowhere.csv: no such file" in line
    line = one_line_error(runner.invoke(body_model, ["evaluate", str(missing), "--model", str(_model_file(tmp_path))]))
    assert "nowhere.csv: no such file" in line

    wrong = write_fda_csv(tmp_path / "wrong.csv", synthetic_rows(5), [c for c in COLUMNS if c != "T_atm"])
    line = one_line_error(runner.invoke(body_model, ["fit", str(wrong), "--out", str(tmp_path / "m.json")]))
    assert "no column 'T_atm'" in line

    corrupt = tmp_path / "corrupt.json"
    doc = json.loads(_model().to_json())
    doc["centres"] = {"canthus": 35.8}
    corrupt.write_text(json.dumps(doc), encoding="utf-8")
    good = write_fda_csv(tmp_path / "good.csv", synthetic_rows(30))
    line = one_line_error(runner.invoke(body_model, ["evaluate", str(good), "--model", str(corrupt)]))
    assert "corrupt.json: centres: expected a value for each of canthus, ambient" in line

    line = one_line_error(runner.invoke(body_model, ["fit", str(good), "--out", str(corrupt)]))
    assert "corrupt.json: exists; choose another file or add --overwrite" in line
    line = one_line_error(runner.invoke(body_model, ["fit", str(good), "--out", str(tmp_path / "m.json"),
                                                     "--features", "ambient,age"]))
    assert "--features: 'age'" in line


def _model_file(tmp_path: Path) -> Path:
    path = tmp_path / "ok-model.json"
    path.write_text(_model().to_json(), encoding="utf-8")
    return path


@needs_fda
def test_fit_and_evaluate_on_the_real_fda_data(tmp_path):
    out = tmp_path / "model.json"
    runner = CliRunner()
    result = runner.invoke(body_model, ["fit", str(FDA_CSV), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "1020 subjects, 111 with oral >= 37.5 °C" in text
    for row in ("constant offset (baseline)", "canthus + ambient  (chosen)", "canthus + ambient + distance",
                "elevated 37.30 °C", "fever 38.00 °C", "early -> late"):
        assert row in text
    model = bm.load_model(out)
    assert model.features == ("canthus", "ambient")
    assert 36.5 < model.predict(36.0, 23.0) < 37.5
    assert model.provenance["command"].startswith("station body-model fit ")
    assert model.provenance["licence"] == "CC0-1.0" and "10.13026/3bhc-9065" in model.provenance["citation"]

    result = runner.invoke(body_model, ["evaluate", str(FDA_CSV), "--model", str(out)])
    assert result.exit_code == 0, result.output
    assert "in-sample" in result.output
    figures = re.search(r"^model\s+(\d\.\d+)\s+[-+]\d\.\d+\s+(\d\.\d+)\s+(\d\.\d+)\s+(\d\.\d+)\s+(\d\.\d+)\s+(\d\.\d+)",
                        result.output, re.MULTILINE)
    assert figures, result.output
    mae, auc, *rates = (float(x) for x in figures.groups())
    assert 0.2 < mae < 0.3 and auc > 0.95 and all(0 <= r <= 1 for r in rates)
    assert "constant offset 1.24 °C" in result.output

    result = runner.invoke(body_model, ["evaluate", str(FDA_CSV)])  # the shipped model by default
    assert result.exit_code == 0, result.output
    assert bm.load_model().id in result.output


@needs_fda
def test_the_shipped_model_beats_the_constant_offset_under_cross_validation(fda):
    shipped = bm.load_model()
    assert shipped.provenance["data_sha256"] == fda.sha256, "fitted on this very file"
    cv = cross_validate(fda, shipped.features[1:], thresholds=(37.3, 38.0))
    assert cv.model.mae_c < cv.baseline.mae_c - 0.02
    assert cv.folds_better == 10
    assert cv.model.auc >= cv.baseline.auc
    assert cv.equal_spec_sens >= cv.equal_spec_baseline_sens
    assert shipped.provenance["cross_validation"] == cv.to_dict(), "the figures in the file are reproducible"
    refit = fit(fda, shipped.features[1:])
    assert refit.id == shipped.id, "the shipped coefficients are what the data gives"


# --------------------------------------------------------------------------------------------- the glasses site
FM_COLUMNS = COLUMNS + [f"{stem}{k}" for stem in ("T_FH_Max", "T_OR_Max") for k in range(1, 5)]


def forehead_mouth_rows(n: int = 400, seed: int = 2, noise: float = 0.05) -> list[dict]:
    """People whose oral temperature is exactly 37 + 0.9 (forehead_mouth - 35.9) - 0.04 (ambient - 24) + noise.

    forehead_mouth is what the station reads behind glasses: per round the hotter of the forehead and the
    mouth. Which one is hotter changes from round to round, so only the per-round max recovers the truth.
    The canthus is unrelated noise here: a fit that read the wrong column would find no slope.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        site = rng.normal(35.9, 0.5)
        ambient = rng.uniform(20, 28)
        oral = 37.0 + 0.9 * (site - 35.9) - 0.04 * (ambient - 24.0) + rng.normal(0, noise)
        row = {"SubjectID": f"g{i:04d}", "aveOralM": f"{oral:.3f}", "T_atm": f"{ambient:.2f}", "Distance": "0.7",
               "Date": "17-03-01", **{f"canthiMax{k}": f"{rng.normal(35.5, 0.5):.3f}" for k in range(1, 5)}}
        for k in range(1, 5):
            hot, cool = site + rng.normal(0, 0.01), site - rng.uniform(0.2, 1.5)
            forehead, mouth = (hot, cool) if rng.random() < 0.5 else (cool, hot)
            row[f"T_FH_Max{k}"], row[f"T_OR_Max{k}"] = f"{forehead:.3f}", f"{mouth:.3f}"
        rows.append(row)
    return rows


def test_sites_are_canthus_and_forehead_mouth():
    assert list(bm.SITES) == ["canthus", "forehead_mouth"]
    assert "canthiMax" in bm.SITES["canthus"] and "T_FH_Max" in bm.SITES["forehead_mouth"]
    assert "T_OR_Max" in bm.SITES["forehead_mouth"]


def test_forehead_mouth_is_the_mean_over_rounds_of_the_per_round_max(tmp_path):
    base = {"aveOralM": "36.9", "T_atm": "23", "Distance": "0.7", "Date": "17-03-01"}
    canthus = {f"canthiMax{k}": "35.5" for k in range(1, 5)}
    rows = [
        # Rounds 1-3 have both (maxima 35.0, 35.0, 34.8); round 4 lacks the forehead and does not count.
        {"SubjectID": "both", **base, **canthus, "T_FH_Max1": "34.0", "T_OR_Max1": "35.0", "T_FH_Max2": "35.0",
         "T_OR_Max2": "34.0", "T_FH_Max3": "34.5", "T_OR_Max3": "34.8", "T_OR_Max4": "36.5"},
        {"SubjectID": "no-mouth", **base, **canthus, **{f"T_FH_Max{k}": "34.0" for k in range(1, 5)}},
        {"SubjectID": "no-canthus", **base, "T_FH_Max2": "35.1", "T_OR_Max2": "35.3"},
        {"SubjectID": "nothing", **base, "T_FH_Max1": "35.1"},
    ]
    data = read_fda_csv(write_fda_csv(tmp_path / "fm.csv", rows, FM_COLUMNS))
    assert list(data.subject_id) == ["both", "no-mouth", "no-canthus"]
    fm = data.column("forehead_mouth")
    assert fm[0] == pytest.approx((35.0 + 35.0 + 34.8) / 3)
    assert math.isnan(fm[1]) and fm[2] == pytest.approx(35.3)
    assert math.isnan(data.canthus[2]) and data.canthus[0] == pytest.approx(35.5)
    notes = " | ".join(data.notes)
    assert "1 subjects without any canthiMax nor a round with both T_FH_Max and T_OR_Max left out" in notes
    assert "1 subjects without any canthiMax kept for forehead_mouth only" in notes
    assert "1 subjects without a round with both T_FH_Max and T_OR_Max kept for canthus only" in notes
    assert list(data.with_site("forehead_mouth").subject_id) == ["both", "no-canthus"]
    assert list(data.with_site("canthus").subject_id) == ["both", "no-mouth"]

    rows[0]["T_FH_Max3"] = "95.0"  # Fahrenheit, or the wrong column: checked like any skin temperature
    bad = write_fda_csv(tmp_path / "bad.csv", rows, FM_COLUMNS)
    glasses = read_fda_csv(bad, ("forehead_mouth", "ambient"))  # a glasses model reads it: subject left out
    assert list(glasses.subject_id) == ["no-mouth", "no-canthus"] and glasses.left_out == (("both", "T_FH_Max3 95"),)
    canthus = read_fda_csv(bad, ("canthus", "ambient"))  # a canthus model does not: that round is missing
    assert list(canthus.subject_id) == ["both", "no-mouth", "no-canthus"] and not canthus.left_out
    assert canthus.forehead_mouth[0] == pytest.approx((35.0 + 35.0) / 2)
    assert "T_FH_Max1-4 outside 20 to 45 °C (or not a number) read as missing for 1 subject, as the model does not " \
           "read it: both: T_FH_Max3 95" in canthus.notes


def test_a_file_without_the_forehead_mouth_columns_has_no_such_site(tmp_path):
    data = read_fda_csv(write_fda_csv(tmp_path / "synthetic.csv", synthetic_rows(30)))
    assert np.isnan(data.forehead_mouth).all() and data.n == 30
    assert not any("T_FH_Max" in note for note in data.notes), "no note for columns the file never had"
    with pytest.raises(StationError, match="no subject has a forehead_mouth value"):
        fit(data, ("ambient",), site="forehead_mouth")


def test_fit_with_site_forehead_mouth_recovers_a_known_relation(tmp_path):
    rows = forehead_mouth_rows()
    for row in rows[:7]:  # seven people without a mouth reading: left out of the fit, and counted
        for k in range(1, 5):
            row[f"T_OR_Max{k}"] = ""
    data = read_fda_csv(write_fda_csv(tmp_path / "fm.csv", rows, FM_COLUMNS))
    model = fit(data, ("ambient",), site="forehead_mouth")
    assert model.site == "forehead_mouth" and model.features == ("forehead_mouth", "ambient")
    assert model.name == "fda-flir-forehead-mouth-linear"
    assert model.coefficients["forehead_mouth"] == pytest.approx(0.9, abs=0.02)
    assert model.coefficients["ambient"] == pytest.approx(-0.04, abs=0.005)
    assert model.predict(35.9, 24.0) == pytest.approx(37.0, abs=0.02)
    assert f"*(forehead_mouth - {model.centres['forehead_mouth']:.3f})" in model.formula(), "it names the site"
    info = model.provenance
    assert (info["n_subjects"], info["n_without_site"], info["site"]) == (393, 7, "forehead_mouth")
    assert info["site_columns"] == bm.SITES["forehead_mouth"] and "canthus" not in info
    cv = info["cross_validation"]
    assert cv["features"] == ["forehead_mouth", "ambient"] and cv["model"]["n"] == 393
    assert cv["baseline"]["model"] == "forehead_mouth + mean offset of the training folds"
    assert cv["model"]["mae_c"] < 0.06 < cv["baseline"]["mae_c"]
    assert bm.BodyModel.from_json(model.to_json()) == model
    vector = predict_data(model, data)
    assert math.isnan(vector[0]) and vector[10] == pytest.approx(model.predict(data.forehead_mouth[10],
                                                                              data.ambient[10]))


def test_the_canthus_model_keeps_its_provenance_and_says_when_it_left_someone_out(tmp_path):
    data = read_fda_csv(write_fda_csv(tmp_path / "synthetic.csv", synthetic_rows(60)))
    info = fit(data, ("ambient",)).provenance
    assert info["canthus"] == bm.SITES["canthus"]
    assert not {"site", "site_columns", "n_without_site"} & set(info), "the canthus model's provenance is unchanged"
    rows = synthetic_rows(60)
    rows[3] = {**rows[3], **{f"canthiMax{k}": "" for k in range(1, 5)}, "T_FH_Max1": "34.9", "T_OR_Max1": "35.2"}
    data = read_fda_csv(write_fda_csv(tmp_path / "one-without.csv", rows, FM_COLUMNS))
    info = fit(data, ("ambient",)).provenance
    assert (info["n_subjects"], info["n_without_site"]) == (59, 1)


def test_a_model_for_either_site_validates_its_features():
    glasses = _model(features=("forehead_mouth", "ambient"), coefficients={"forehead_mouth": 0.88, "ambient": -0.04},
                     centres={"forehead_mouth": 35.95, "ambient": 24.0})
    assert glasses.site == "forehead_mouth" and _model().site == "canthus"
    assert glasses.predict(skin_c=36.45, ambient_c=24.0) == pytest.approx(37.0 + 0.88 * 0.5)
    with pytest.raises(StationError) as info:
        _model(features=("ambient", "canthus"), coefficients={"canthus": 0.8, "ambient": -0.05})
    assert "features: expected 'canthus' then" in str(info.value) and "'forehead_mouth'" in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(StationError, match="features: expected"):  # one site per model
        _model(features=("canthus", "forehead_mouth"), coefficients={"canthus": 0.8, "forehead_mouth": 0.1},
               centres={"canthus": 35.8, "forehead_mouth": 35.9}, ranges={"forehead_mouth": (33.0, 38.0)})


def test_the_shipped_glasses_model_loads_and_beats_its_constant_offset():
    model = bm.load_glasses_model()
    assert model.site == "forehead_mouth" and model.features == ("forehead_mouth", "ambient")
    assert bm.DEFAULT_GLASSES_MODEL_PATH.name == "body-model-glasses.json"
    info = model.provenance
    assert info["data_set"] == FDA_DATA_SET and info["n_subjects"] == 1020 and len(info["data_sha256"]) == 64
    assert "--site forehead_mouth" in info["command"] and info["licence"] == "CC0-1.0"
    cv = info["cross_validation"]
    assert cv["model"]["mae_c"] < cv["baseline"]["mae_c"] - 0.01
    assert cv["folds_model_mae_below_baseline"] == 10
    assert 36.5 < model.predict(36.0, 23.0) < 37.5


def test_each_loader_refuses_the_other_site_in_one_line_naming_it():
    with pytest.raises(StationError) as info:
        bm.load_model(bm.DEFAULT_GLASSES_MODEL_PATH)
    message = str(info.value)
    assert "body-model-glasses.json: site: a model for 'forehead_mouth', expected one for 'canthus'" in message
    assert "\n" not in message
    with pytest.raises(StationError) as info:
        bm.load_glasses_model(bm.DEFAULT_MODEL_PATH)
    message = str(info.value)
    assert "body-model.json: site: a model for 'canthus', expected one for 'forehead_mouth'" in message
    assert "\n" not in message
    assert bm.load_model(bm.DEFAULT_GLASSES_MODEL_PATH, site=None).site == "forehead_mouth", "None takes any site"
    assert bm.load_model().id == "fda-flir-linear-v1@20bbb1232cdc", "the canthus model is unchanged"


def test_fit_and_evaluate_a_forehead_mouth_model_from_the_command_line(tmp_path):
    csv_path = write_fda_csv(tmp_path / "fm.csv", forehead_mouth_rows(200), FM_COLUMNS)
    out = tmp_path / "glasses.json"
    runner = CliRunner()
    result = runner.invoke(body_model, ["fit", str(csv_path), "--site", "forehead_mouth", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for row in ("forehead_mouth = max(T_FH_Max, T_OR_Max) per round", "forehead_mouth + ambient  (chosen)",
                "forehead_mouth + ambient + distance", "canthus + ambient  (canthus model)"):
        assert row in result.output
    model = bm.load_glasses_model(out)
    assert model.name == "fda-flir-forehead-mouth-linear" and model.site == "forehead_mouth"
    assert model.provenance["command"].endswith(f"--out {out} --site forehead_mouth")

    result = runner.invoke(body_model, ["evaluate", str(csv_path), "--model", str(out)])
    assert result.exit_code == 0, result.output
    assert "site: forehead_mouth" in result.output and model.id in result.output
    mae = re.search(r"^model\s+(\d\.\d+)", result.output, re.MULTILINE)
    assert mae and float(mae.group(1)) < 0.06, result.output
    assert "canthus + 1.24 °C (no glasses)" in result.output

    named = tmp_path / "named.json"
    result = runner.invoke(body_model, ["fit", str(csv_path), "--site", "forehead_mouth", "--out", str(named),
                                        "--name", "entrance-glasses"])
    assert result.exit_code == 0, result.output
    assert bm.load_glasses_model(named).name == "entrance-glasses"
    assert "--name entrance-glasses" in bm.load_glasses_model(named).provenance["command"]


def test_a_typo_in_the_site_is_a_usage_error_in_one_line(tmp_path):
    csv_path = write_fda_csv(tmp_path / "fm.csv", forehead_mouth_rows(20), FM_COLUMNS)
    result = CliRunner().invoke(body_model, ["fit", str(csv_path), "--site", "forhead", "--out",
                                             str(tmp_path / "m.json")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "'--site'" in errors[0] and "'forhead'" in errors[0], result.output
    assert "canthus" in errors[0] and "forehead_mouth" in errors[0]
    assert not (tmp_path / "m.json").exists()


@needs_fda
def test_the_shipped_glasses_model_is_what_the_data_gives_under_cross_validation(fda):
    shipped = bm.load_glasses_model()
    assert shipped.provenance["data_sha256"] == fda.sha256, "fitted on this very file"
    cv = cross_validate(fda, shipped.features[1:], site="forehead_mouth", thresholds=(37.3, 38.0))
    assert cv.n_without_site == 0 and cv.model.n == 1020
    assert cv.model.mae_c < cv.baseline.mae_c - 0.01
    assert cv.folds_better == 10
    assert cv.model.auc >= cv.baseline.auc
    assert shipped.provenance["cross_validation"] == cv.to_dict(), "the figures in the file are reproducible"
    refit = fit(fda, shipped.features[1:], site="forehead_mouth")
    assert refit.id == shipped.id, "the shipped coefficients are what the data gives"
    assert {k: v for k, v in refit.provenance.items() if k not in ("fitted", "command", "citation", "licence",
                                                                   "thresholds_c")} == {
        k: v for k, v in shipped.provenance.items() if k not in ("fitted", "command", "citation", "licence",
                                                                 "thresholds_c")}


@needs_fda
def test_the_glasses_site_reads_the_study_as_documented(fda):
    # Spot check against the study's own columns for the first subject: per-round max, then the mean.
    with open(FDA_CSV, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    header, first = rows[2], rows[3]
    column = {name: i for i, name in reversed(list(enumerate(header)))}
    per_round = [max(float(first[column[f"T_FH_Max{k}"]]), float(first[column[f"T_OR_Max{k}"]])) for k in range(1, 5)]
    assert fda.subject_id[0] == first[column["SubjectID"]]
    assert fda.forehead_mouth[0] == pytest.approx(sum(per_round) / 4)
    assert not np.isnan(fda.forehead_mouth).any()


def test_the_model_sites_are_the_sites_a_decision_may_name():
    from station.screen.body_model import SITES as MODEL_SITES
    from station.types import SITES as DECISION_SITES

    assert tuple(MODEL_SITES) == DECISION_SITES


# --------------------------------------------------------------------------------------------- one bad cell
# Real files have the odd impossible cell (the FLIR file a Distance of 79 m; the FDA's second-camera file, ICI,
# a Humidity of 3021.1 % on subject 180327-01). A bad cell costs at most its subject, never the file: read as
# missing where the model does not read the column, the subject left out and named where it does.
SHIPPED_INPUTS = ("canthus", "ambient")  # what models/body-model.json reads (checked below, not assumed)


def test_the_shipped_model_reads_canthus_and_ambient():
    assert bm.load_model().features == SHIPPED_INPUTS


def test_an_impossible_humidity_is_read_as_missing_and_counted(tmp_path):
    rows = synthetic_rows(40)
    rows[7]["Humidity"] = "3021.1"
    rows[9]["Humidity"] = "n/a"
    rows[11]["Humidity"] = "45"
    data = read_fda_csv(write_fda_csv(tmp_path / "h.csv", rows), SHIPPED_INPUTS)
    assert data.n == 40 and not data.left_out
    assert math.isnan(data.humidity[7]) and math.isnan(data.humidity[9]) and data.humidity[11] == 45.0
    assert ("Humidity outside 0 to 100 % (or not a number) read as missing for 2 subjects, as the model does not "
            "read it: s0007: 3021.1; s0009: 'n/a'") in data.notes


@pytest.mark.parametrize(("column", "value", "why"), [
    ("T_atm", "245", "T_atm 245"),
    ("aveOralM", "98.6", "aveOralM 98.6"),
    ("canthiMax2", "95.1", "canthiMax2 95.1"),
    ("canthiMax4", "35,2", "canthiMax4 '35,2'"),
])
def test_an_impossible_value_in_a_column_the_model_reads_leaves_that_subject_out(tmp_path, column, value, why):
    rows = synthetic_rows(40)
    rows[5][column] = value
    data = read_fda_csv(write_fda_csv(tmp_path / "bad.csv", rows), SHIPPED_INPUTS)
    assert data.n == 39 and "s0005" not in set(data.subject_id)
    assert data.left_out == (("s0005", why),)
    assert data.notes[0].startswith(f"1 subject left out for a bad cell in a column the model reads: s0005 ({why}) "
                                    "(plausible: ")


def test_whether_a_column_is_read_comes_from_the_model(tmp_path):
    rows = synthetic_rows(40)
    rows[3]["T_atm"] = "245"
    rows[4]["Distance"] = "79"
    path = write_fda_csv(tmp_path / "bad.csv", rows)
    no_ambient = read_fda_csv(path, ("canthus",))  # a model without ambient: T_atm is read as missing
    assert no_ambient.n == 40 and math.isnan(no_ambient.ambient[3]) and math.isnan(no_ambient.distance[4])
    with_distance = read_fda_csv(path, ("canthus", "ambient", "distance"))  # a model with distance: left out
    assert [who for who, _ in with_distance.left_out] == ["s0003", "s0004"] and with_distance.n == 38
    assert "plausible: T_atm -30 to 50 °C; Distance 0.2 to 5 m" in with_distance.notes[0]
    nothing_named = read_fda_csv(path)  # no model: only the reference costs a subject
    assert nothing_named.n == 40 and not nothing_named.left_out
    with pytest.raises(StationError, match="inputs: expected a model's features"):
        read_fda_csv(path, ("canthus", "age"))


def test_a_long_list_of_subjects_is_cut_after_ten(tmp_path):
    rows = synthetic_rows(40)
    for row in rows[:15]:
        row["Humidity"] = "3021.1"
        row["Date"] = ""
    for row in rows[20:33]:
        row["T_atm"] = "-99"
    data = read_fda_csv(write_fda_csv(tmp_path / "many.csv", rows), SHIPPED_INPUTS)
    assert data.n == 27
    humidity = next(note for note in data.notes if note.startswith("Humidity"))
    assert "for 15 subjects" in humidity and humidity.endswith("s0009: 3021.1 (+5 more)")
    assert "s0010" not in humidity
    left = data.notes[0]
    assert left.startswith("13 subjects left out") and "s0029 (T_atm -99) (+3 more)" in left and "s0030" not in left


def test_a_row_without_or_with_a_repeated_subject_id_is_left_out_and_named(tmp_path):
    rows = synthetic_rows(30)
    rows[4]["SubjectID"] = ""
    rows[6]["SubjectID"] = "s0002"
    data = read_fda_csv(write_fda_csv(tmp_path / "ids.csv", rows), SHIPPED_INPUTS)
    assert data.n == 28 and list(data.subject_id).count("s0002") == 1
    assert data.left_out == (("row 8", "no SubjectID"), ("s0002 (row 10)", "SubjectID already on row 6"))


def test_evaluate_prints_its_figures_and_names_what_it_left_out(tmp_path):
    rows = synthetic_rows(200)
    rows[17]["Humidity"] = "3021.1"
    rows[18]["Distance"] = "79"
    rows[19]["T_atm"] = "245"
    csv_path = write_fda_csv(tmp_path / "planted.csv", rows)
    result = CliRunner().invoke(body_model, ["evaluate", str(csv_path), "--model", str(_model_file(tmp_path))])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "planted.csv: 199 subjects" in out
    assert "note: 1 subject left out for a bad cell in a column the model reads: s0019 (T_atm 245)" in out
    assert "note: Humidity outside 0 to 100 % (or not a number) read as missing for 1 subject" in out
    assert "note: Distance outside 0.2 to 5 m (or not a number) read as missing for 1 subject" in out
    assert re.search(r"^model\s+\d\.\d{4}\s+[-+]\d\.\d{3}\s+\d\.\d{4}", out, re.MULTILINE), out

    result = CliRunner().invoke(body_model, ["evaluate", str(csv_path), "--model", str(_model_file(tmp_path)),
                                             "--no-ambient"])
    assert result.exit_code == 0, result.output
    assert "planted.csv: 200 subjects" in result.output, "without ambient, T_atm is not read: nobody left out"
    assert "T_atm outside -30 to 50 °C (or not a number) read as missing for 1 subject" in result.output


def test_fit_leaves_out_a_subject_only_for_what_it_fits(tmp_path):
    rows = synthetic_rows(200)
    rows[5]["T_atm"] = "245"
    rows[6]["Distance"] = "79"
    csv_path = write_fda_csv(tmp_path / "planted.csv", rows)
    out = tmp_path / "m.json"
    result = CliRunner().invoke(body_model, ["fit", str(csv_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "planted.csv: 199 subjects" in result.output and "s0005 (T_atm 245)" in result.output
    assert bm.load_model(out).provenance["n_subjects"] == 199


def test_a_file_with_nothing_usable_or_not_in_the_layout_is_one_line(tmp_path):
    runner = CliRunner()
    model = str(_model_file(tmp_path))
    rows = synthetic_rows(30)
    for row in rows:
        row["T_atm"] = f"{float(row['T_atm']) * 9 / 5 + 32:.1f}"  # the room in Fahrenheit throughout
    fahrenheit = write_fda_csv(tmp_path / "fahrenheit.csv", rows)
    line = one_line_error(runner.invoke(body_model, ["evaluate", str(fahrenheit), "--model", model]))
    assert "fahrenheit.csv: nothing usable" in line and "30 subjects left out" in line and "(+20 more)" in line
    assert "plausible: T_atm -30 to 50 °C" in line

    other = write_fda_csv(tmp_path / "other.csv", synthetic_rows(5), ["SubjectID", "Humidity", "Gender"])
    line = one_line_error(runner.invoke(body_model, ["evaluate", str(other), "--model", model]))
    assert "other.csv: not in the FDA facial/oral layout: no column 'aveOralM'" in line

    no_site = write_fda_csv(tmp_path / "no-site.csv", synthetic_rows(30))  # nobody has forehead/mouth readings
    line = one_line_error(runner.invoke(body_model, ["evaluate", str(no_site), "--model",
                                                     str(bm.DEFAULT_GLASSES_MODEL_PATH)]))
    assert "no-site.csv: no subject has a forehead_mouth value" in line


def _planted_copy(tmp_path: Path, cells: dict[str, tuple[str, str]]) -> Path:
    """A copy of the real FDA file with ``{subject: (column, text)}`` written over its cells."""
    with open(FDA_CSV, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    column = {name: i for i, name in reversed(list(enumerate(rows[2])))}
    by_subject = {row[column["SubjectID"]]: row for row in rows[3:] if row}
    for subject, (name, text) in cells.items():
        by_subject[subject][column[name]] = text
    path = tmp_path / f"planted-{FDA_CSV.name}"
    with open(path, "w", newline="", encoding="utf-8-sig") as out:
        csv.writer(out).writerows(rows)
    return path


@needs_fda
def test_evaluate_reads_the_real_file_with_planted_bad_cells(tmp_path):
    planted = _planted_copy(tmp_path, {"180326-03": ("Humidity", "3021.1"), "170209-03": ("Distance", "790"),
                                       "170310-02": ("T_atm", "245"), "161117-2": ("T_FH_Max2", "95.3")})
    runner = CliRunner()
    result = runner.invoke(body_model, ["evaluate", str(planted)])  # the shipped canthus model
    assert result.exit_code == 0, result.output
    out = result.output
    assert "1019 subjects, 111 with oral >= 37.5 °C" in out
    assert "note: 1 subject left out for a bad cell in a column the model reads: 170310-02 (T_atm 245)" in out
    assert "for 1 subject, as the model does not read it: 180326-03: 3021.1" in out
    assert "for 2 subjects, as the model does not read it: 170208-17: 79; 170209-03: 790" in out, "and the study's own"
    assert "161117-2: T_FH_Max2 95.3" in out, "the other site's columns are not read by a canthus model"
    figures = re.search(r"^model\s+(\d\.\d+)\s+[-+]\d\.\d+\s+(\d\.\d+)", out, re.MULTILINE)
    assert figures and 0.2 < float(figures.group(1)) < 0.3 and float(figures.group(2)) > 0.95, out

    result = runner.invoke(body_model, ["evaluate", str(planted), "--model", str(bm.DEFAULT_GLASSES_MODEL_PATH)])
    assert result.exit_code == 0, result.output
    assert "1018 subjects" in result.output, "the glasses model reads T_FH_Max: 161117-2 is left out too"
    assert "2 subjects left out for a bad cell in a column the model reads: 161117-2 (T_FH_Max2 95.3); 170310-02 " \
           "(T_atm 245)" in result.output
