"""Body temperature from a skin temperature, fitted to real people (the FDA facial/oral study).

The station measures skin; the thresholds are about body temperature. :class:`BodyModel` is the step
between them: a small linear model, fitted by :func:`fit` on data in the layout of the FDA's facial and
oral temperature study (PhysioNet ``face-oral-temp-data``, CC0), checked by :func:`cross_validate`
against the constant offset the station used before, and stored as JSON with its provenance.

Measuring sites
---------------
A model is about one measuring site (:data:`SITES`), its first feature:

``canthus``
    the inner canthi, the best window on core temperature the face offers, and what the station reads
    by default (``models/body-model.json``).
``forehead_mouth``
    the hottest of the forehead and the mouth region, for people wearing glasses: spectacle lenses are
    opaque in long-wave infrared, so behind them the canthi cannot be measured at all, while the face
    outside the eye band can (``models/body-model-glasses.json``).

The two sites have different offsets and slopes to core temperature (in the study the forehead/mouth
reads 0.16 °C warmer than the canthus on average, sd 0.32 °C, and follows oral temperature with a
slope of 0.88 against 0.79), so each has its own model; a model file says which site it is for, and the
loaders refuse a file for the other site (:func:`load_model`, :func:`load_glasses_model`): a model fed
the other site's reading gives a plausible number that is off by the difference, with nothing to show it.

The model
---------
::

    body_c = intercept_c + sum over features f of coefficients[f] * (x[f] - centres[f])

with the site's skin temperature always the first feature and ``ambient`` (room temperature, °C) and
``distance`` (m) optional. The centres are the training means, so a missing optional input (``None`` or
NaN) falls back to the training mean and its term vanishes: the model then answers for an average room
and distance of the study. Optional inputs are clamped to the range seen in training (``ranges``): the
model never extrapolates a correction it has not seen. The skin temperature itself is never clamped.

Why linear, and why these inputs: see ``models/README.md`` (the cross-validated comparison of the
features tried). The short version: skin follows body temperature nearly one for one and is cooler in
a cooler room; everything else the study recorded either does not help on new people or is something the
station cannot measure.

Choosing a model
----------------
:func:`compare` tries every candidate of :data:`COMPARE_CANDIDATES` (a skin reading the station can take,
with or without room temperature and distance) on the same people and folds, and checks each across the
study's rounds (one round's readings at a time: the station reads a person once) and its collection
periods (:func:`collection_periods`, each left out in turn). :func:`choose` then applies
:data:`SELECTION_RULE`, a rule written down before the comparison was run: ranking first (AUC), no less
robust than the shipped model across periods and rounds, then the lowest MAE, fewer inputs on a tie. On
the FDA's FLIR half it keeps the shipped canthus + ambient model: the face's maximum (``face_max``) has a
much lower MAE on the mean of four rounds, but read once it is off by up to 0.49 °C, because the mouth it
mostly is reads 0.65 °C warmer in one round than in the others. :func:`transfer` checks the candidates
on another file (the study's other camera) after the choice.

Data
----
:func:`read_fda_csv` reads a CSV in the study's layout (three header rows, the column names in the
third): per subject four rounds of facial temperatures, ``aveOralM`` (oral thermometer, monitor mode:
the reference), ``T_atm`` and ``Distance``. The canthus input is ``canthiMax`` (the hottest pixel of
both inner canthi) averaged over the rounds the subject has: the station reads the hottest canthus
pixel, made robust over frames, which a mean of per-round maxima matches (a maximum over rounds would
build a best-of-four selection into the offset that the station does not do). The forehead/mouth input
is built the same way: per round the hotter of ``T_FH_Max`` (whole forehead) and ``T_OR_Max`` (mouth
region), averaged over the rounds that have both.

Real files have the odd impossible cell (the FLIR file a ``Distance`` of 79 m, the ICI file a ``Humidity``
of 3021.1 %). One bad cell costs at most its subject, never the file: the reader is told which inputs the
model at hand reads (its :attr:`BodyModel.features`); an impossible value in a column it does not read is
read as missing, one in a column it reads leaves that subject out, and both are said in the data's notes.

Figures
-------
:class:`Figures` are what the station is judged on: mean absolute error of the estimate, ROC AUC for
oral >= 37.5 °C (computed by hand, Mann-Whitney with ties counted a half), and sensitivity and
specificity for that same condition at the station's ``elevated_c`` and ``fever_c`` thresholds applied
to the estimate (rounded to 0.01 °C and inclusive, as :func:`station.alarm.classify` does).

Pure numpy and the standard library: no pandas, no scikit-learn.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from station.errors import StationError
from station.types import Site

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL_PATH = MODELS_DIR / "body-model.json"
#: The model for people wearing glasses (site ``forehead_mouth``): see :func:`load_glasses_model`.
DEFAULT_GLASSES_MODEL_PATH = MODELS_DIR / "body-model-glasses.json"
SCHEMA_VERSION = 1

#: Where the station can read skin temperature, and the study's columns behind each (a model's first feature).
#: The canthus text is also the canthus model's provenance entry, so it must not change (see :func:`fit`).
SITES: Mapping[str, str] = MappingProxyType({
    Site.CANTHUS.value: "canthiMax (max over both inner canthi) averaged over the subject's rounds 1-4",
    Site.FOREHEAD_MOUTH.value: "max(T_FH_Max, T_OR_Max) per round (the hotter of the whole forehead's max and "
                               "the mouth region's max: the face outside the eye band, for people wearing glasses) "
                               "averaged over the subject's rounds 1-4 that have both",
})
#: The site the station measures when glasses hide the canthi.
GLASSES_SITE = Site.FOREHEAD_MOUTH.value
#: A model's name when none is given: the name starts the id logged with every decision, so it says the site.
DEFAULT_NAMES: Mapping[str, str] = MappingProxyType({Site.CANTHUS.value: "fda-flir-linear",
                                                     Site.FOREHEAD_MOUTH.value: "fda-flir-forehead-mouth-linear"})

#: The condition the figures are about: oral temperature at or above this is "febrile" (FDA study, ISO 80601-2-59).
REFERENCE_FEVER_C = 37.5
#: Cross-validation: folds by subject, with this seed, unless told otherwise.
CV_FOLDS = 10
CV_SEED = 7

#: Inputs a model may use besides its site's skin temperature: the station can measure them at run time.
MODEL_FEATURES = ("ambient", "distance")
#: Further columns of the study that cross-validation can try, but that a model cannot use (see module notes).
RESEARCH_FEATURES = ("forehead", "forehead_max", "face_max", "humidity")
CANDIDATE_FEATURES = MODEL_FEATURES + RESEARCH_FEATURES
#: Skin readings, each a temperature of the face: never clamped to a training range (a fever must not be capped).
SKIN_INPUTS = ("canthus", "forehead_mouth", "forehead", "forehead_max", "face_max")

#: The study's columns behind each input; a number is the round (1-4). ``forehead`` is the forehead's centre
#: (``T_FHC_Max``), ``forehead_max`` the whole forehead (``T_FH_Max``, also half of ``forehead_mouth``),
#: ``face_max`` the hottest pixel of the whole face (``T_Max``).
_ROUND_COLUMNS = {"canthus": "canthiMax", "forehead": "T_FHC_Max", "forehead_max": "T_FH_Max", "face_max": "T_Max"}
#: ``forehead_mouth`` is built from two of them per round (see :func:`read_fda_csv`).
_FOREHEAD_MOUTH_STEMS = ("T_FH_Max", "T_OR_Max")
#: Skin readings: every round of each is kept (:attr:`FdaData.per_round`) for the check across rounds.
ROUND_INPUTS = ("canthus", "forehead_mouth", "forehead", "forehead_max", "face_max")
_REQUIRED = ("SubjectID", "aveOralM", "T_atm", "Distance") + tuple(f"canthiMax{k}" for k in range(1, 5))
_OPTIONAL = ("Humidity", "Date") + tuple(f"{c}{k}" for c in ("T_FHC_Max", "T_Max") + _FOREHEAD_MOUTH_STEMS
                                         for k in range(1, 5))
HEADER_ROW = 3  # 1-based: the row with the column names (pandas' header=2)

# Plausibility: a value outside these is the wrong unit, the wrong column or a typing error (the FLIR file has
# one Distance of 79 m among 0.5-0.9 m, the ICI file one Humidity of 3021.1 %). What becomes of it depends on
# whether the model at hand reads it (see read_fda_csv): read as missing, or its subject left out.
_BODY_RANGE_C = (30.0, 45.0)
_SKIN_RANGE_C = (20.0, 45.0)
_AMBIENT_RANGE_C = (-30.0, 50.0)
_DISTANCE_RANGE_M = (0.2, 5.0)
_HUMIDITY_RANGE = (0.0, 100.0)

#: Each input read from the cells: its plausible range and unit.
_PLAUSIBLE: Mapping[str, tuple[tuple[float, float], str]] = MappingProxyType({
    "oral": (_BODY_RANGE_C, "°C"), "canthus": (_SKIN_RANGE_C, "°C"), "forehead_mouth": (_SKIN_RANGE_C, "°C"),
    "forehead": (_SKIN_RANGE_C, "°C"), "forehead_max": (_SKIN_RANGE_C, "°C"), "face_max": (_SKIN_RANGE_C, "°C"),
    "ambient": (_AMBIENT_RANGE_C, "°C"), "distance": (_DISTANCE_RANGE_M, "m"), "humidity": (_HUMIDITY_RANGE, "%"),
})
#: The input behind each numeric column of the study (the :class:`FdaData` field it feeds; for T_FH_Max, which
#: feeds two, the one whose plausible range applies: both are skin).
_COLUMN_INPUT: Mapping[str, str] = MappingProxyType({
    "aveOralM": "oral", "T_atm": "ambient", "Distance": "distance", "Humidity": "humidity",
    **{f"{stem}{k}": key for key, stem in _ROUND_COLUMNS.items() for k in range(1, 5)},
    **{f"{stem}{k}": "forehead_mouth" for stem in _FOREHEAD_MOUTH_STEMS for k in range(1, 5)},
})
#: Every input each column feeds: a bad cell costs the subject when the model reads any of them.
_COLUMN_READ_BY: Mapping[str, frozenset[str]] = MappingProxyType({
    column: frozenset({key} | {k for k, stem in _ROUND_COLUMNS.items() if column[:-1] == stem}
                      | ({"forehead_mouth"} if column[:-1] in _FOREHEAD_MOUTH_STEMS else set()))
    for column, key in _COLUMN_INPUT.items()
})
#: How many subjects a note names before it says "+N more".
_NAMED_IN_NOTE = 10

#: The study the shipped model was fitted on; ``station body-model fit`` records it unless told otherwise.
FDA_DATA_SET = "FDA facial and oral temperatures, PhysioNet face-oral-temp-data v1.0.0"
FDA_CITATION = (
    "Wang Q, Zhou Y, Ghassemi P, Chenna D, Chen M, Casamento J, Pfefer J, McBride D. Facial and oral "
    "temperature data from a large set of human subject volunteers (version 1.0.0). PhysioNet (2023). "
    "https://doi.org/10.13026/3bhc-9065. Study: Wang Q et al., Infrared Thermography for Measuring Elevated "
    "Body Temperature: Clinical Accuracy, Calibration, and Evaluation, Sensors 22:215 (2022). PhysioNet: "
    "Goldberger A et al., Circulation 101(23):e215-e220 (2000)."
)
FDA_LICENCE = "CC0-1.0"


# ============================================================================================== data
@dataclass(frozen=True, eq=False)
class FdaData:
    """One row per subject of a CSV in the FDA study's layout; NaN where a value is missing.

    ``canthus`` is canthiMax averaged over the subject's rounds, ``forehead_mouth`` the per-round max of
    T_FH_Max and T_OR_Max averaged over the rounds with both (the two :data:`SITES`), ``oral`` is
    aveOralM, ``ambient`` T_atm, ``distance`` Distance (m), ``forehead`` T_FHC_Max, ``forehead_max``
    T_FH_Max and ``face_max`` T_Max (each averaged over rounds), ``humidity`` Humidity (%), ``day`` the
    measurement date as a proleptic Gregorian ordinal (for the checks across time), ``rounds`` the number
    of rounds with canthiMax. ``per_round`` keeps, for each of :data:`ROUND_INPUTS`, the four rounds
    themselves (an array of shape (n, 4), NaN where a round lacks the reading): the station reads a
    person once, not four times, so :func:`compare` also checks each model on one round at a time.
    Subjects without aveOralM or without a value for any site are left out and counted in ``notes``; a
    subject with one site but not the other is kept, and left out only of what needs the missing site
    (:meth:`with_site`).

    ``left_out`` names the rows left out for a fault of their own, as ``(subject, why)``: an impossible
    value in a column the model reads (``why`` is e.g. ``"T_atm 250"``), or no or a repeated SubjectID.
    They are also in ``notes``, which is what a command prints.
    """

    path: str
    sha256: str
    subject_id: np.ndarray
    canthus: np.ndarray
    forehead_mouth: np.ndarray
    oral: np.ndarray
    ambient: np.ndarray
    distance: np.ndarray
    forehead: np.ndarray
    face_max: np.ndarray
    humidity: np.ndarray
    day: np.ndarray
    rounds: np.ndarray
    notes: tuple[str, ...] = ()
    left_out: tuple[tuple[str, str], ...] = ()
    forehead_max: np.ndarray | None = None
    per_round: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Older callers build FdaData without the whole-forehead column: it is then simply unknown (NaN).
        if self.forehead_max is None:
            object.__setattr__(self, "forehead_max", np.full(self.oral.shape, math.nan))

    @property
    def n(self) -> int:
        return int(self.oral.size)

    @property
    def febrile(self) -> np.ndarray:
        return self.oral >= REFERENCE_FEVER_C

    def column(self, name: str) -> np.ndarray:
        """A site's skin temperature or a candidate feature, by name (NaN where the subject lacks it)."""
        if name not in tuple(SITES) + CANDIDATE_FEATURES:
            raise StationError(f"feature {name!r}: expected one of {', '.join(tuple(SITES) + CANDIDATE_FEATURES)}")
        return getattr(self, name)

    def with_site(self, site: str) -> FdaData:
        """The subjects who have a value for ``site``: what a fit or check of that site's model can use.

        A model for one site says nothing about a subject whose site was not measured, and a NaN in
        the fitted column would poison the least squares; such subjects are left out, not imputed.
        """
        _check_site(site)
        return self.subset(~np.isnan(self.column(site)))

    def subset(self, mask: np.ndarray) -> FdaData:
        """The subjects where ``mask`` is true (same file, same notes)."""
        arrays = {name: getattr(self, name)[mask] for name in _ARRAY_FIELDS}
        per_round = {name: rounds[mask] for name, rounds in self.per_round.items()}
        return FdaData(path=self.path, sha256=self.sha256, notes=self.notes, left_out=self.left_out,
                       per_round=per_round, **arrays)

    def at_round(self, k: int) -> FdaData:
        """The same subjects with every skin reading taken from round ``k`` (1-4) alone, NaN where it is missing.

        What a station that reads each person once would have seen: the other inputs (room, distance)
        are per subject already. Needs :attr:`per_round` (a file read by :func:`read_fda_csv`).
        """
        if not 1 <= k <= 4 or not self.per_round:
            raise StationError(f"at_round: expected a round 1-4 of data read with its rounds, got {k!r}")
        arrays = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        for name, rounds in self.per_round.items():
            arrays[name] = rounds[:, k - 1]
        return FdaData(path=self.path, sha256=self.sha256, notes=self.notes, left_out=self.left_out,
                       per_round=self.per_round, **arrays)


_ARRAY_FIELDS = ("subject_id", "canthus", "forehead_mouth", "oral", "ambient", "distance", "forehead", "face_max",
                 "humidity", "day", "rounds", "forehead_max")


def _check_site(site: Any, where: str = "site") -> str:
    if site not in SITES:
        raise StationError(f"{where}: expected one of {', '.join(SITES)}, got {_show(site)}")
    return site


def _plausible(text: str, feature: str) -> tuple[float, str | None]:
    """A cell's value and, when it is impossible, how to show it (else ``None``); an empty cell is NaN.

    Impossible means not a finite number, or outside the input's plausible range (:data:`_PLAUSIBLE`):
    either way the cell says nothing true about the subject, and the caller decides what that costs.
    """
    text = text.strip()
    if not text:
        return math.nan, None
    try:
        value = float(text)
    except ValueError:
        return math.nan, repr(text[:20])
    if not math.isfinite(value):
        return math.nan, repr(text[:20])
    low, high = _PLAUSIBLE[feature][0]
    if not low <= value <= high:
        return math.nan, f"{value:g}"
    return value, None


def _family(column: str) -> str:
    """``canthiMax3`` -> ``canthiMax1-4``: the four rounds of one measurement share a note."""
    return f"{column[:-1]}1-4" if column[-1:].isdigit() and column[:-1] in (
        *_ROUND_COLUMNS.values(), *_FOREHEAD_MOUTH_STEMS) else column


def _plausible_range(column: str) -> str:
    (low, high), unit = _PLAUSIBLE[_COLUMN_INPUT[column]]
    return f"{low:g} to {high:g} {unit}"


def _subjects(n: int) -> str:
    return f"{n} subject" + ("" if n == 1 else "s")


def _named(items: Sequence[str], cap: int = _NAMED_IN_NOTE) -> str:
    """The first ``cap`` of ``items`` joined, then ``(+N more)``: a note stays one readable line."""
    more = len(items) - cap
    return "; ".join(items[:cap]) + (f" (+{more} more)" if more > 0 else "")


def _inputs_read(inputs: Sequence[str] | None) -> frozenset[str]:
    """The inputs whose impossible values leave a subject out: ``oral`` always, and the model's ``inputs``."""
    if inputs is None:
        return frozenset({"oral"})
    allowed = tuple(SITES) + CANDIDATE_FEATURES
    if isinstance(inputs, str) or not all(isinstance(f, str) and f in allowed for f in inputs):
        raise StationError(f"read_fda_csv: inputs: expected a model's features, any of {', '.join(allowed)}; "
                           f"got {_show(inputs if isinstance(inputs, str) else list(inputs))}")
    return frozenset({"oral", *inputs})


def _day(text: str) -> float:
    """The study writes dates as YY-MM-DD; anything else is simply unknown (NaN)."""
    try:
        return float(dt.datetime.strptime(text.strip(), "%y-%m-%d").date().toordinal())
    except ValueError:
        return math.nan


def read_fda_csv(path: str | Path, inputs: Sequence[str] | None = None) -> FdaData:
    """Read a CSV in the FDA facial/oral study's layout, keeping every subject a bad cell does not spoil.

    Each site's value is a mean over the rounds of per-round maxima, as the station reads the hottest
    pixel of a region made robust over frames. For ``forehead_mouth`` a round counts only when it has
    both T_FH_Max and T_OR_Max: the max of one of them alone would be a different, cooler site. The
    T_FH_Max and T_OR_Max columns are optional (a file without them simply has no forehead_mouth), and
    range-checked as skin temperatures like every other facial column.

    Parameters
    ----------
    path
        The CSV file.
    inputs
        What the model at hand reads: its :attr:`BodyModel.features` (the site first, then e.g.
        ``ambient``), or for a fit the site and the chosen features. The reference ``aveOralM`` is always
        read. ``None`` (no model named): only the reference is read, so an impossible value anywhere
        else is read as missing; pass a model's features to figure or fit that model.

    Returns
    -------
    FdaData
        One row per usable subject; ``notes`` says what was read as missing and who was left out, and
        why, with a count and at most ten names (then ``+N more``).

    Raises
    ------
    StationError
        One line naming the file, only when the file is not the study's layout (unreadable, no header
        row, a required column missing or twice) or nothing usable is left.

    Notes
    -----
    A cell is impossible when it is not a number or is outside its column's plausible range (a body
    temperature 30 to 45 °C, skin 20 to 45, room -30 to 50, distance 0.2 to 5 m, humidity 0 to 100 %): the wrong
    unit, the wrong column or a typing error. What it costs depends on what the model reads, because
    the auditor must not lose a whole file, nor be shown figures that rest on a guess:

    - in a column the model does not read (``Humidity``, which no model reads; ``Distance`` for a model
      without distance; the other site's columns), the value is read as missing, as if the cell were
      empty, and counted in a note: the model's figures do not depend on it. This is what the reader
      always did with the FLIR file's one 79 m ``Distance``.
    - in a column the model reads (``aveOralM``, its site's columns, ``T_atm`` for a model with
      ambient), the subject is left out and named in a note: reading it as missing would have the model
      answer for a room or a skin it never saw, and the subject's figure would be made up. An impossible
      round of the site is not dropped alone either: the other rounds of the same person are suspect too.

    A row without a SubjectID, or repeating one already read, is left out and named the same way: the
    first row of a subject is kept, as folds by subject must not see one person twice.
    """
    path = Path(path)
    reads = _inputs_read(inputs)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StationError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise StationError(f"{path}: is a directory, expected a CSV file") from None
    except OSError as exc:
        raise StationError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StationError(f"{path}: not a text CSV (not UTF-8)") from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise StationError(f"{path}: not a readable CSV ({exc})") from None
    if len(rows) < HEADER_ROW:
        raise StationError(f"{path}: not in the FDA facial/oral layout: expected the column names in row "
                           f"{HEADER_ROW}, the file has {len(rows)} rows")
    header = [name.strip() for name in rows[HEADER_ROW - 1]]
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in index and name in _REQUIRED + _OPTIONAL:
            raise StationError(f"{path}: column {name!r} appears twice in the header (row {HEADER_ROW})")
        index.setdefault(name, i)
    for name in _REQUIRED:
        if name not in index:
            raise StationError(f"{path}: not in the FDA facial/oral layout: no column {name!r} in the header "
                               f"(row {HEADER_ROW})")

    notes: list[str] = []
    ids: list[str] = []
    values: dict[str, list[float]] = {name: [] for name in _ARRAY_FIELDS if name != "subject_id"}
    per_round: dict[str, list[list[float]]] = {name: [] for name in ROUND_INPUTS}
    seen: dict[str, int] = {}
    no_oral = no_site = canthus_missing = forehead_mouth_missing = 0
    has_forehead_mouth = any(f"{stem}{k}" in index for stem in _FOREHEAD_MOUTH_STEMS for k in range(1, 5))
    left_out: list[tuple[str, str]] = []  # (subject, why): a fault in what the model reads
    left_out_columns: dict[str, str] = {}  # column family -> its plausible range, for the note
    missing: dict[str, list[str]] = {}  # column family -> "subject: value" read as missing
    for line_no, row in enumerate(rows[HEADER_ROW:], start=HEADER_ROW + 1):
        if not any(cell.strip() for cell in row):
            continue
        subject = row[index["SubjectID"]].strip() if index["SubjectID"] < len(row) else ""
        if not subject:
            left_out.append((f"row {line_no}", "no SubjectID"))
            continue
        if subject in seen:
            left_out.append((f"{subject} (row {line_no})", f"SubjectID already on row {seen[subject]}"))
            continue
        seen[subject] = line_no
        bad_read: list[tuple[str, str]] = []  # (column, value) impossible in a column the model reads
        bad_other: list[tuple[str, str]] = []  # the same in a column it does not: read as missing
        read_cells: dict[str, float] = {}  # T_FH_Max feeds two inputs: each cell is read (and noted) once

        def cell(name: str, row: list[str] = row, bad_read: list[tuple[str, str]] = bad_read,
                 bad_other: list[tuple[str, str]] = bad_other, read_cells: dict[str, float] = read_cells) -> float:
            if name in read_cells:
                return read_cells[name]
            i = index.get(name)
            if i is None or i >= len(row):
                return math.nan
            value, shown = _plausible(row[i], _COLUMN_INPUT[name])
            if shown is not None:
                (bad_read if _COLUMN_READ_BY[name] & reads else bad_other).append((name, shown))
            read_cells[name] = value
            return value

        oral = cell("aveOralM")
        by_round: dict[str, list[float]] = {}
        for key, stem in _ROUND_COLUMNS.items():
            by_round[key] = [cell(f"{stem}{k}") for k in range(1, 5)]
        by_round["forehead_mouth"] = []
        for k in range(1, 5):
            pair = [cell(f"{stem}{k}") for stem in _FOREHEAD_MOUTH_STEMS]
            by_round["forehead_mouth"].append(math.nan if any(math.isnan(v) for v in pair) else max(pair))
        rounds = {key: [v for v in got if not math.isnan(v)] for key, got in by_round.items()}
        ambient = cell("T_atm")
        distance = cell("Distance")
        humidity = cell("Humidity")
        if bad_read:
            left_out.append((subject, ", ".join(f"{name} {shown}" for name, shown in bad_read)))
            for name, _ in bad_read:
                left_out_columns.setdefault(_family(name), _plausible_range(name))
            continue
        if math.isnan(oral):
            no_oral += 1
            continue
        if not rounds["canthus"] and not rounds["forehead_mouth"]:
            no_site += 1
            continue
        for name, shown in bad_other:
            family = _family(name)
            missing.setdefault(family, []).append(f"{subject}: {shown}" if family == name
                                                  else f"{subject}: {name} {shown}")
        canthus_missing += not rounds["canthus"]
        forehead_mouth_missing += has_forehead_mouth and not rounds["forehead_mouth"]
        date_i = index.get("Date")
        ids.append(subject)
        values["oral"].append(oral)
        values["rounds"].append(float(len(rounds["canthus"])))
        for key in ROUND_INPUTS:
            got = rounds[key]
            values[key].append(sum(got) / len(got) if got else math.nan)
            per_round[key].append(by_round[key])
        values["ambient"].append(ambient)
        values["distance"].append(distance)
        values["humidity"].append(humidity)
        values["day"].append(_day(row[date_i]) if date_i is not None and date_i < len(row) else math.nan)
    if left_out:
        plausible = "; ".join(f"{family} {bounds}" for family, bounds in left_out_columns.items())
        notes.append(f"{_subjects(len(left_out))} left out for a bad cell in a column the model reads: "
                     + _named([f"{who} ({why})" for who, why in left_out])
                     + (f" (plausible: {plausible})" if plausible else ""))
    if not ids:
        raise StationError(f"{path}: nothing usable: no subject with both aveOralM and a skin temperature "
                           "(canthiMax, or T_FH_Max and T_OR_Max in one round)" + (f"; {notes[0]}" if left_out
                                                                                    else ""))
    if no_oral:
        notes.append(f"{no_oral} subjects without aveOralM left out")
    if no_site:
        notes.append(f"{no_site} subjects without any canthiMax" + (
            " nor a round with both T_FH_Max and T_OR_Max" if has_forehead_mouth else "") + " left out")
    for family, found in missing.items():
        column = family if family in _COLUMN_INPUT else family.replace("1-4", "1")
        notes.append(f"{family} outside {_plausible_range(column)} (or not a number) read as missing for "
                     f"{_subjects(len(found))}, as the model does not read it: {_named(found)}")
    if canthus_missing:
        notes.append(f"{canthus_missing} subjects without any canthiMax kept for forehead_mouth only")
    if forehead_mouth_missing:
        notes.append(f"{forehead_mouth_missing} subjects without a round with both T_FH_Max and T_OR_Max kept for "
                     "canthus only")
    return FdaData(path=str(path), sha256=hashlib.sha256(raw).hexdigest(),
                   subject_id=np.array(ids, dtype=object), notes=tuple(notes), left_out=tuple(left_out),
                   per_round={k: np.array(v, dtype=float).reshape(-1, 4) for k, v in per_round.items()},
                   **{k: np.array(v, dtype=float) for k, v in values.items()})


# ============================================================================================== figures
def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by Mann-Whitney: the chance that a positive scores above a negative, ties counting a half.

    NaN when either class is empty. Average ranks make ties exact: U = R_pos - n_pos (n_pos + 1) / 2.
    """
    scores = np.asarray(scores, dtype=float)
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = int(positive.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    ranks = np.empty(scores.size, dtype=float)
    # Average rank (1-based) of each run of equal scores.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    run_rank = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(run_rank, ends - starts)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _rate(flag: np.ndarray, among: np.ndarray) -> float:
    return float(flag[among].mean()) if among.any() else math.nan


def _at_threshold(body: np.ndarray, threshold_c: float) -> np.ndarray:
    """Who the station flags at a threshold: rounded to 0.01 °C and inclusive, as ``alarm.classify``."""
    return np.round(body, 2) >= threshold_c - 1e-6


@dataclass(frozen=True)
class Figures:
    """How well estimated body temperatures match oral ones; rates are about oral >= ``reference_c``."""

    n: int
    positives: int
    mae_c: float
    bias_c: float  # mean of estimate - oral
    auc: float
    reference_c: float
    elevated_c: float
    fever_c: float
    sens_elevated: float
    spec_elevated: float
    sens_fever: float
    spec_fever: float
    sens_reference: float  # at a threshold of reference_c itself
    spec_reference: float

    def to_dict(self) -> dict[str, Any]:
        return {k: _round4(v) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _round4(x: float) -> float | None:
    """For JSON: 4 decimals, no "-0.0", and None for NaN (JSON has no NaN)."""
    return round(float(x), 4) + 0.0 if math.isfinite(x) else None


def figures(body_c: np.ndarray, oral_c: np.ndarray, thresholds: tuple[float, float],
            reference_c: float = REFERENCE_FEVER_C) -> Figures:
    """The figures of estimates ``body_c`` against ``oral_c`` at thresholds (elevated_c, fever_c)."""
    body = np.asarray(body_c, dtype=float)
    oral = np.asarray(oral_c, dtype=float)
    elevated_c, fever_c = (float(t) for t in thresholds)
    pos = oral >= reference_c
    neg = ~pos
    rates = {}
    for key, t in (("elevated", elevated_c), ("fever", fever_c), ("reference", reference_c)):
        flag = _at_threshold(body, t)
        rates[f"sens_{key}"] = _rate(flag, pos)
        rates[f"spec_{key}"] = _rate(~flag, neg)
    return Figures(n=int(body.size), positives=int(pos.sum()), mae_c=float(np.mean(np.abs(body - oral))),
                   bias_c=float(np.mean(body - oral)), auc=roc_auc(body, pos), reference_c=float(reference_c),
                   elevated_c=elevated_c, fever_c=fever_c, **rates)


def sensitivity_at_specificity(body_c: np.ndarray, positive: np.ndarray, specificity: float
                               ) -> tuple[float, float, float]:
    """The best sensitivity at a specificity of at least ``specificity``: (sensitivity, specificity, threshold).

    The threshold is the lowest that flags no more negatives than the specificity allows: everyone
    strictly above the k+1-th warmest negative, k = the false positives allowed. It is returned as the
    midpoint between that negative and the next estimate above it, so ``body >= threshold`` flags the same
    people. This reads the ROC curve at a given false-positive rate; it is not a threshold learnt blind.
    """
    body = np.asarray(body_c, dtype=float)
    positive = np.asarray(positive, dtype=bool)
    negatives = np.sort(body[~positive])[::-1]
    allowed = int(math.floor((1.0 - specificity) * negatives.size + 1e-9))
    if allowed >= negatives.size:
        cut = -math.inf
        threshold = float(body.min())
    else:
        cut = float(negatives[allowed])
        above = body[body > cut]
        threshold = (cut + float(above.min())) / 2.0 if above.size else cut + 0.01
    flag = body > cut
    return _rate(flag, positive), _rate(~flag, ~positive), threshold


# ============================================================================================== the model
def _finite(value: Any, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StationError(f"{where}: expected a finite number, got {_show(value)}")
    if not low <= value <= high:
        raise StationError(f"{where}: expected {low:g} to {high:g}, got {value!r}")
    return float(value)


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."


_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_KEYS = ("schema_version", "name", "version", "features", "intercept_c", "coefficients", "centres", "ranges",
         "provenance")


@dataclass(frozen=True)
class BodyModel:
    """``body_c = intercept_c + sum_f coefficients[f] * (x_f - centres[f])``; see the module notes.

    ``features`` starts with the measuring site (:attr:`site`, one of :data:`SITES`: ``"canthus"`` or,
    for people with glasses, ``"forehead_mouth"``), whose skin temperature is the model's main input;
    the others come from :data:`MODEL_FEATURES`. ``ranges`` gives each optional feature's training
    range (inputs are clamped to it). ``provenance`` says where the numbers come from: data set, its
    sha256, number of subjects, date fitted, the cross-validated figures and the command.
    """

    name: str
    version: int
    features: tuple[str, ...]
    intercept_c: float
    coefficients: Mapping[str, float]
    centres: Mapping[str, float]
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self._check("model")

    # ---------------------------------------------------------------------------------- checks
    def _check(self, where: str) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise StationError(f"{where}: name: expected lower-case letters, digits, '.', '_' or '-', "
                               f"got {_show(self.name)}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise StationError(f"{where}: version: expected an integer >= 1, got {_show(self.version)}")
        feats = self.features
        if (not isinstance(feats, tuple) or not feats or feats[0] not in SITES
                or len(set(feats)) != len(feats) or not all(f in MODEL_FEATURES for f in feats[1:])):
            others = " or ".join(repr(str(s)) for s in SITES if s != Site.CANTHUS)
            raise StationError(f"{where}: features: expected 'canthus' then any of {', '.join(MODEL_FEATURES)} "
                               f"(each once; the site {others} may stand first instead of 'canthus'), "
                               f"got {_show(list(feats) if isinstance(feats, tuple) else feats)}")
        _finite(self.intercept_c, f"{where}: intercept_c", *_BODY_RANGE_C)
        for key, table in (("coefficients", self.coefficients), ("centres", self.centres)):
            if not isinstance(table, Mapping) or set(table) != set(feats):
                got = sorted(table) if isinstance(table, Mapping) else table
                raise StationError(f"{where}: {key}: expected a value for each of {', '.join(feats)}, got {_show(got)}")
            for f in feats:
                _finite(table[f], f"{where}: {key}.{f}")
        _finite(self.coefficients[feats[0]], f"{where}: coefficients.{feats[0]}", 0.2, 2.0)
        if not isinstance(self.ranges, Mapping) or set(self.ranges) != set(feats[1:]):
            got = sorted(self.ranges) if isinstance(self.ranges, Mapping) else self.ranges
            raise StationError(f"{where}: ranges: expected a [low, high] for each of {', '.join(feats[1:]) or 'none'}, "
                               f"got {_show(got)}")
        for f, pair in self.ranges.items():
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise StationError(f"{where}: ranges.{f}: expected [low, high], got {_show(pair)}")
            low = _finite(pair[0], f"{where}: ranges.{f}[0]")
            high = _finite(pair[1], f"{where}: ranges.{f}[1]")
            if low > high:
                raise StationError(f"{where}: ranges.{f}: expected low <= high, got {_show(list(pair))}")
        if not isinstance(self.provenance, dict):
            raise StationError(f"{where}: provenance: expected a table, got {_show(self.provenance)}")
        # Checked, now frozen: a model's answers (and so its id) cannot change after it is made.
        for key in ("coefficients", "centres"):
            object.__setattr__(self, key, MappingProxyType({f: float(getattr(self, key)[f]) for f in feats}))
        object.__setattr__(self, "ranges", MappingProxyType(
            {f: (float(self.ranges[f][0]), float(self.ranges[f][1])) for f in feats[1:]}))

    @property
    def site(self) -> str:
        """Where the skin temperature the model takes is measured (``features[0]``, one of :data:`SITES`)."""
        return self.features[0]

    # ---------------------------------------------------------------------------------- identity
    def parameters(self) -> dict[str, Any]:
        """What decides the model's answers (not its provenance): what :attr:`id` hashes."""
        return {"name": self.name, "version": self.version, "features": list(self.features),
                "intercept_c": self.intercept_c, "coefficients": dict(self.coefficients),
                "centres": dict(self.centres), "ranges": {k: list(v) for k, v in self.ranges.items()}}

    @cached_property
    def id(self) -> str:
        """``name-vN@sha256[:12]`` of the parameters: two files that answer alike share it, for the log."""
        canonical = json.dumps(self.parameters(), sort_keys=True, separators=(",", ":"))
        return f"{self.name}-v{self.version}@{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"

    def formula(self) -> str:
        """The model as one readable line, e.g. ``body = 37.028 + 0.787*(canthus - 35.788) - ...``.

        The first term names the site, so a log or a printout says which skin the model reads.
        """
        parts = [f"body = {self.intercept_c:.3f}"]
        for f in self.features:
            b = self.coefficients[f]
            unit = " m" if f == "distance" else ""
            parts.append(f"{'-' if b < 0 else '+'} {abs(b):.3f}*({f} - {self.centres[f]:.3f}{unit})")
        return " ".join(parts)

    # ---------------------------------------------------------------------------------- use
    def predict(self, skin_c: Any, ambient_c: Any = None, distance_m: Any = None) -> Any:
        """Body temperature (°C) from the site's skin temperature, and optionally room temperature and distance.

        ``skin_c`` is measured where the model's :attr:`site` says (the canthus, or for the glasses model
        the hottest of forehead and mouth); the model cannot check that, the loaders do. Scalars in, a
        float out (pure Python, a microsecond or two: cheap enough per decision); arrays in (broadcast
        together), an array out. An optional input that is ``None`` or NaN falls back to the training
        mean (its term is then zero); one outside the training range is clamped to it. Inputs the model
        does not use are ignored. A NaN skin temperature gives NaN.
        """
        given = {"ambient": ambient_c, "distance": distance_m}
        site = self.site
        if all(v is None or isinstance(v, int | float) for v in (skin_c, ambient_c, distance_m)):
            if skin_c is None:
                raise ValueError("BodyModel.predict: skin_c is required")
            body = self.intercept_c + self.coefficients[site] * (float(skin_c) - self.centres[site])
            for f in self.features[1:]:
                x = given[f]
                if x is None or math.isnan(x):
                    continue
                low, high = self.ranges[f]
                body += self.coefficients[f] * (min(max(float(x), low), high) - self.centres[f])
            return body
        skin = np.asarray(skin_c, dtype=float)
        body = self.intercept_c + self.coefficients[site] * (skin - self.centres[site])
        for f in self.features[1:]:
            x = given[f]
            if x is None:
                continue
            x = np.asarray(x, dtype=float)
            low, high = self.ranges[f]
            term = self.coefficients[f] * (np.clip(x, low, high) - self.centres[f])
            body = body + np.where(np.isnan(x), 0.0, term)
        return body

    def predict_data(self, data: FdaData) -> np.ndarray:
        """Estimates for every subject of ``data`` from the model's site (NaN where it is missing)."""
        return np.asarray(self.predict(data.column(self.site), data.ambient, data.distance), dtype=float)

    # ---------------------------------------------------------------------------------- files
    def to_json(self) -> str:
        doc = {"schema_version": SCHEMA_VERSION, **self.parameters(),
               "formula": "body_c = intercept_c + sum(coefficients[f] * (x[f] - centres[f])); optional inputs "
                          "clamped to ranges[f], missing ones at centres[f]",
               "id": self.id, "provenance": self.provenance}
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "model") -> BodyModel:
        """A model from its JSON; any fault is one StationError line naming ``where`` and the key."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StationError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        if not isinstance(doc, dict):
            raise StationError(f"{where}: expected a JSON object, got {_show(doc)}")
        if doc.get("schema_version") != SCHEMA_VERSION:
            got = _show(doc.get("schema_version"))
            raise StationError(f"{where}: schema_version: expected {SCHEMA_VERSION}, got {got}")
        informational = ("formula", "id")
        for key in doc:
            if key not in _KEYS + informational:
                raise StationError(f"{where}: unknown key {key!r}")
        for key in _KEYS:
            if key not in doc:
                raise StationError(f"{where}: {key}: missing")
        feats = doc["features"]
        if not isinstance(feats, list) or not all(isinstance(f, str) for f in feats):
            raise StationError(f"{where}: features: expected a list of names, got {_show(feats)}")
        ranges = doc["ranges"]
        if isinstance(ranges, dict):
            ranges = {k: tuple(v) if isinstance(v, list) else v for k, v in ranges.items()}
        provenance = doc["provenance"]
        if isinstance(provenance, dict):
            for key, kind in (("data_set", str), ("n_subjects", int), ("fitted", str)):
                value = provenance.get(key)
                if not isinstance(value, kind) or isinstance(value, bool):
                    raise StationError(f"{where}: provenance.{key}: expected a {kind.__name__}, got {_show(value)}")
        model = cls.__new__(cls)
        for name, value in (("name", doc["name"]), ("version", doc["version"]), ("features", tuple(feats)),
                            ("intercept_c", doc["intercept_c"]), ("coefficients", doc["coefficients"]),
                            ("centres", doc["centres"]), ("ranges", ranges), ("provenance", provenance)):
            object.__setattr__(model, name, value)
        model._check(where)
        if "id" in doc and doc["id"] != model.id:
            raise StationError(f"{where}: id: the file says {_show(doc['id'])} but its parameters hash to "
                               f"{model.id!r} (edited by hand?)")
        return model


def load_model(path: str | Path | None = None, site: str | None = "canthus") -> BodyModel:
    """The model in ``path`` (default: the shipped ``models/body-model.json``), refusing one for another site.

    Parameters
    ----------
    path
        A model file written by :meth:`BodyModel.to_json`; ``None`` for the shipped canthus model.
    site
        The site the caller will feed (one of :data:`SITES`), or ``None`` to accept any (for tools that
        only look at a model, such as ``station body-model evaluate``). The station's canthus path asks
        for ``"canthus"``: a glasses (``forehead_mouth``) model there would be fed canthus readings, with
        another offset and slope than it was fitted on, and every estimate would be off without a sign.

    Raises
    ------
    StationError
        One line naming the file and the fault, including a model for a site other than ``site``.
    """
    if site is not None:
        _check_site(site, "load_model: site")
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StationError(f"{path}: no such model file") from None
    except UnicodeDecodeError:
        raise StationError(f"{path}: not a JSON model (not UTF-8 text)") from None
    except OSError as exc:
        raise StationError(f"{path}: cannot read the model ({exc.strerror or exc})") from None
    model = BodyModel.from_json(text, where=str(path))
    if site is not None and model.site != site:
        raise StationError(f"{path}: site: a model for {model.site!r}, expected one for {str(site)!r} "
                           f"({_SITE_USE[site]})")
    return model


#: What each site's model is for, in the loaders' refusals.
_SITE_USE = {"canthus": "the canthus reading of people without glasses",
             "forehead_mouth": "the forehead/mouth reading of people wearing glasses"}


def load_glasses_model(path: str | Path | None = None) -> BodyModel:
    """The model for people wearing glasses (site ``forehead_mouth``; default ``models/body-model-glasses.json``).

    Like :func:`load_model`, and refusing (one StationError line) a file whose site is not
    ``forehead_mouth``: a canthus model fed a forehead/mouth reading (on average 0.16 °C warmer than
    the canthus in the FDA study) would overstate body temperature, by a different amount for each person.
    """
    return load_model(DEFAULT_GLASSES_MODEL_PATH if path is None else path, site=GLASSES_SITE)


# ============================================================================================== fitting
@dataclass(frozen=True)
class _Linear:
    """A fitted linear map on centred inputs (any candidate features, for cross-validation).

    ``features[0]`` is the site (never clamped); the others are clamped to their training ranges.
    """

    features: tuple[str, ...]
    intercept: float
    coefficients: np.ndarray
    centres: np.ndarray
    ranges: np.ndarray  # (p, 2)

    def predict(self, data: FdaData) -> np.ndarray:
        body = np.full(data.n, self.intercept)
        for j, f in enumerate(self.features):
            x = data.column(f)
            if f not in SKIN_INPUTS:  # a skin reading is never clamped: a fever must not be capped
                x = np.clip(x, self.ranges[j, 0], self.ranges[j, 1])
            body += self.coefficients[j] * np.where(np.isnan(x), 0.0, x - self.centres[j])
        return body


def _fit_linear(data: FdaData, features: Sequence[str], ridge: float) -> _Linear:
    """Least squares of oral on centred inputs; missing optional inputs at the mean (term zero).

    The site is the first column: ``features[0]`` when it is one of :data:`SITES`, else ``canthus``
    (so ``("ambient",)`` means canthus + ambient, as before sites existed). Every subject must have the
    site's value (see :meth:`FdaData.with_site`): a missing site is not an input that can sit at its mean.

    ``ridge`` >= 0 pulls the coefficients towards the constant offset (site 1, everything else 0) with
    a penalty ``ridge * n * var(x_f) * (b_f - prior_f)^2``: scale-free, and for one input ``ridge = 1``
    lands half-way between least squares and the prior.
    """
    site = features[0] if features and features[0] in SITES else "canthus"
    feats = (site,) + tuple(f for f in features if f != site)
    if np.isnan(data.column(site)).any():
        raise StationError(f"{data.path}: {site}: missing for some subjects; fit on data.with_site({site!r})")
    return _fit_inputs(data, feats, ridge)


def _fit_inputs(data: FdaData, feats: Sequence[str], ridge: float) -> _Linear:
    """The least squares of :func:`_fit_linear` on exactly ``feats``, ``feats[0]`` the primary reading.

    :func:`compare` uses it directly, as its candidates may lead with a reading that is not a site
    (``face_max``, ``forehead_max``); the caller makes sure every subject has the primary reading.
    """
    feats = tuple(feats)
    n = data.n
    columns, centres, ranges = [], [], []
    for f in feats:
        x = data.column(f)
        known = ~np.isnan(x)
        if not known.any():
            raise StationError(f"{data.path}: feature {f!r}: no subject has a value")
        if np.ptp(x[known]) == 0.0:
            raise StationError(f"{data.path}: feature {f!r}: the same value for every subject, nothing to fit")
        centre = float(x[known].mean())
        centres.append(centre)
        ranges.append((float(x[known].min()), float(x[known].max())))
        columns.append(np.where(known, x - centre, 0.0))
    design = np.column_stack(columns)
    intercept = float(data.oral.mean())
    target = data.oral - intercept
    prior = np.array([1.0] + [0.0] * (len(feats) - 1))
    penalty = np.diag(ridge * n * design.var(axis=0))
    gram = design.T @ design + penalty
    if np.linalg.cond(gram) > 1e12:
        raise StationError(f"{data.path}: features {', '.join(feats)}: cannot be told apart in this data (collinear)")
    coefficients = np.linalg.solve(gram, design.T @ target + penalty @ prior)
    return _Linear(feats, intercept, coefficients, np.array(centres), np.array(ranges))


def fit(data: FdaData, features: Sequence[str] = ("ambient",), *, site: str = "canthus", ridge: float = 0.0,
        name: str | None = None, version: int = 1, thresholds: tuple[float, float] = (37.3, 38.0),
        folds: int = CV_FOLDS, seed: int = CV_SEED, provenance: dict[str, Any] | None = None) -> BodyModel:
    """Fit a model on all of ``data`` that has the site, with its cross-validated figures in the provenance.

    Parameters
    ----------
    data
        Subjects in the FDA layout; those without a value for ``site`` are left out (counted in the
        provenance as ``n_without_site``, always for a non-canthus site, for canthus only when there are any).
    features
        The optional inputs besides the site's skin temperature (from :data:`MODEL_FEATURES`).
    site
        The measuring site (one of :data:`SITES`), the model's first feature.
    ridge
        The pull towards the constant offset (see :func:`_fit_linear`; 0 is plain least squares).
    name
        The model's name; ``None`` for the site's default (:data:`DEFAULT_NAMES`).

    Notes
    -----
    Coefficients are rounded to 6 decimals so that the JSON file is the model, exactly. The canthus
    model's provenance is exactly what it was before models had sites (a ``canthus`` entry describing
    the column), so that re-running the documented command reproduces ``models/body-model.json`` but for
    the date; other sites record ``site`` and ``site_columns`` instead.
    """
    _check_site(site)
    for f in features:
        if f not in MODEL_FEATURES:
            why = "the station does not measure it at run time" if f in RESEARCH_FEATURES else "unknown feature"
            raise StationError(f"feature {f!r}: cannot be a model input ({why}); expected any of "
                               f"{', '.join(MODEL_FEATURES)}")
    if not (isinstance(ridge, int | float) and math.isfinite(ridge) and ridge >= 0):
        raise StationError(f"ridge: expected a number >= 0, got {ridge!r}")
    name = DEFAULT_NAMES[site] if name is None else name
    usable = data.with_site(site)
    if usable.n == 0:
        raise StationError(f"{data.path}: no subject has a {site} value ({SITES[site]})")
    without = data.n - usable.n
    linear = _fit_linear(usable, (site, *features), float(ridge))
    cv = cross_validate(usable, features, site=site, ridge=ridge, thresholds=thresholds, folds=folds, seed=seed)

    def r6(x: float) -> float:
        return round(float(x), 6)

    info: dict[str, Any] = {
        "data_set": FDA_DATA_SET,
        "data_file": Path(data.path).name,
        "data_sha256": data.sha256,
        "n_subjects": usable.n,
        "n_febrile": int(usable.febrile.sum()),
        "reference": f"aveOralM (oral thermometer, monitor mode); febrile = oral >= {REFERENCE_FEVER_C} °C",
    }
    if site == "canthus":
        info["canthus"] = SITES["canthus"]
    else:
        info["site"] = site
        info["site_columns"] = SITES[site]
    if without or site != "canthus":
        info["n_without_site"] = without
    info["fitted"] = dt.date.today().isoformat()
    info["method"] = "least squares on centred inputs" + (f", ridge {ridge:g} towards the constant offset" if ridge
                                                          else "")
    info.update(provenance or {})
    info["cross_validation"] = cv.to_dict()
    info["across_time"] = [{"direction": s.direction, "n_train": s.n_train, "n_test": s.n_test,
                            "baseline_mae_c": _round4(s.baseline.mae_c), "model_mae_c": _round4(s.model.mae_c),
                            "baseline_bias_c": _round4(s.baseline.bias_c), "model_bias_c": _round4(s.model.bias_c)}
                           for s in time_split(usable, features, site=site, ridge=ridge, thresholds=thresholds)]
    return BodyModel(
        name=name, version=version, features=linear.features, intercept_c=r6(linear.intercept),
        coefficients={f: r6(b) for f, b in zip(linear.features, linear.coefficients, strict=True)},
        centres={f: r6(c) for f, c in zip(linear.features, linear.centres, strict=True)},
        ranges={f: (r6(lo), r6(hi)) for f, (lo, hi) in zip(linear.features[1:], linear.ranges[1:], strict=True)},
        provenance=info)


def evaluate(model: BodyModel, data: FdaData, thresholds: tuple[float, float],
             reference_c: float = REFERENCE_FEVER_C) -> Figures:
    """The model's figures at the thresholds (elevated_c, fever_c) on estimated body temperature.

    On the subjects of ``data`` that have the model's site (the others cannot be estimated by it).
    """
    data = data.with_site(model.site)
    return figures(model.predict_data(data), data.oral, thresholds, reference_c)


def offset_figures(offset_c: float, data: FdaData, thresholds: tuple[float, float],
                   reference_c: float = REFERENCE_FEVER_C, site: str = "canthus") -> Figures:
    """The figures of a constant offset (body = site + ``offset_c``): what the station does without a model.

    On the subjects of ``data`` that have the site. The station's configured offset is a canthus offset.
    """
    data = data.with_site(site)
    return figures(data.column(site) + offset_c, data.oral, thresholds, reference_c)


# ============================================================================================== validation
def subject_folds(subject_id: np.ndarray, folds: int = CV_FOLDS, seed: int = CV_SEED) -> np.ndarray:
    """The fold (0..folds-1) of every row: all rows of one subject in one fold, subjects shuffled by ``seed``."""
    unique, inverse = np.unique(np.asarray(subject_id).astype(str), return_inverse=True)
    if unique.size < folds or folds < 2:
        raise StationError(f"cross-validation: expected at least {max(folds, 2)} subjects for {folds} folds, "
                           f"got {unique.size}")
    order = np.random.default_rng(seed).permutation(unique.size)
    fold_of_subject = np.empty(unique.size, dtype=int)
    fold_of_subject[order] = np.arange(unique.size) % folds
    return fold_of_subject[inverse]


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold figures of a model and of the constant offset, on the same folds.

    ``site`` is the model's first input, and the baseline is that site + the training folds' mean
    offset; ``predictions``, ``baseline_predictions`` and ``fold`` are per subject of the data that has
    the site (``n_without_site`` others were left out).

    ``equal_spec_*``: the baseline flags at ``reference_c`` (its specificity there is the target); the
    model's threshold is moved, on the pooled held-out estimates, to the lowest one that is at least as
    specific, and its sensitivity there is reported. ``trained_*``: the same with the model's threshold
    chosen on each training fold (in-sample estimates), then applied to the held-out subjects: what a
    station could actually deploy.
    """

    features: tuple[str, ...]
    ridge: float
    folds: int
    seed: int
    baseline: Figures
    model: Figures
    equal_spec_target: float
    equal_spec_baseline_sens: float
    equal_spec_sens: float
    equal_spec_spec: float
    equal_spec_threshold_c: float
    trained_sens: float
    trained_spec: float
    fold_mae_baseline: tuple[float, ...]
    fold_mae_model: tuple[float, ...]
    coefficient_mean: dict[str, float]
    coefficient_sd: dict[str, float]
    predictions: np.ndarray = field(repr=False, compare=False)
    baseline_predictions: np.ndarray = field(repr=False, compare=False)
    fold: np.ndarray = field(repr=False, compare=False)
    site: str = "canthus"
    n_without_site: int = 0

    @property
    def folds_better(self) -> int:
        """In how many folds the model's MAE is below the baseline's."""
        return sum(m < b for m, b in zip(self.fold_mae_model, self.fold_mae_baseline, strict=True))

    def to_dict(self) -> dict[str, Any]:
        r = _round4
        return {
            "folds": self.folds, "by": "subject", "seed": self.seed, "features": [self.site, *self.features],
            "ridge": self.ridge, "baseline": {"model": f"{self.site} + mean offset of the training folds",
                                              **self.baseline.to_dict()},
            "model": self.model.to_dict(),
            "equal_specificity": {"specificity": r(self.equal_spec_target),
                                  "baseline_sensitivity": r(self.equal_spec_baseline_sens),
                                  "model_sensitivity": r(self.equal_spec_sens),
                                  "model_specificity": r(self.equal_spec_spec),
                                  "model_threshold_c": r(self.equal_spec_threshold_c),
                                  "model_sensitivity_threshold_from_training_folds": r(self.trained_sens),
                                  "model_specificity_threshold_from_training_folds": r(self.trained_spec)},
            "folds_model_mae_below_baseline": self.folds_better,
            "coefficients_over_folds": {f: {"mean": r(self.coefficient_mean[f]), "sd": r(self.coefficient_sd[f])}
                                        for f in self.coefficient_mean},
        }


def cross_validate(data: FdaData, features: Sequence[str] = ("ambient",), *, ridge: float = 0.0,
                   thresholds: tuple[float, float] = (37.3, 38.0), folds: int = CV_FOLDS, seed: int = CV_SEED,
                   reference_c: float = REFERENCE_FEVER_C, site: str = "canthus") -> CrossValidation:
    """K-fold cross-validation by subject of ``site`` + ``features`` against the site's constant offset.

    Any of :data:`CANDIDATE_FEATURES` may be tried here, including those a model cannot use. Every
    fold's model, means, ranges and offset are fitted without its held-out subjects; figures are computed
    on the pooled held-out estimates. Subjects without the site's value are left out first (counted in
    ``n_without_site``): the baseline is the site + the training folds' mean offset, so model and
    baseline are always judged on the same people.
    """
    _check_site(site)
    all_n = data.n
    data = data.with_site(site)
    fold = subject_folds(data.subject_id, folds, seed)
    feats = tuple(f for f in features if f != site)
    for f in feats:
        if f not in CANDIDATE_FEATURES:
            raise StationError(f"feature {f!r}: expected any of {', '.join(CANDIDATE_FEATURES)}")
    pred = np.empty(data.n)
    base = np.empty(data.n)
    pos = data.febrile
    coefs = []
    trained_flag = np.zeros(data.n, dtype=bool)
    fold_mae_b, fold_mae_m = [], []
    for k in range(folds):
        test = fold == k
        train_data, test_data = data.subset(~test), data.subset(test)
        linear = _fit_linear(train_data, (site, *feats), ridge)
        coefs.append(linear.coefficients)
        pred[test] = linear.predict(test_data)
        offset = float(np.mean(train_data.oral - train_data.column(site)))
        base[test] = test_data.column(site) + offset
        # A deployable threshold: chosen on the training fold to match the baseline's specificity there.
        train_pos = train_data.febrile
        spec_train = _rate(~_at_threshold(train_data.column(site) + offset, reference_c), ~train_pos)
        _, _, thr = sensitivity_at_specificity(linear.predict(train_data), train_pos, spec_train)
        trained_flag[test] = pred[test] >= thr
        fold_mae_b.append(float(np.mean(np.abs(base[test] - test_data.oral))))
        fold_mae_m.append(float(np.mean(np.abs(pred[test] - test_data.oral))))
    base_fig = figures(base, data.oral, thresholds, reference_c)
    model_fig = figures(pred, data.oral, thresholds, reference_c)
    target = base_fig.spec_reference
    sens, spec, thr = sensitivity_at_specificity(pred, pos, target)
    coefs_arr = np.array(coefs)
    names = (site,) + feats
    return CrossValidation(
        features=feats, ridge=float(ridge), folds=folds, seed=seed, baseline=base_fig, model=model_fig,
        equal_spec_target=target, equal_spec_baseline_sens=base_fig.sens_reference, equal_spec_sens=sens,
        equal_spec_spec=spec, equal_spec_threshold_c=thr, trained_sens=_rate(trained_flag, pos),
        trained_spec=_rate(~trained_flag, ~pos), fold_mae_baseline=tuple(fold_mae_b),
        fold_mae_model=tuple(fold_mae_m),
        coefficient_mean={f: float(m) for f, m in zip(names, coefs_arr.mean(axis=0), strict=True)},
        coefficient_sd={f: float(s) for f, s in zip(names, coefs_arr.std(axis=0), strict=True)},
        predictions=pred, baseline_predictions=base, fold=fold, site=site, n_without_site=all_n - data.n)


@dataclass(frozen=True)
class TimeSplit:
    """Fitted on the subjects measured before (or after) the median date, tested on the others."""

    direction: str
    n_train: int
    n_test: int
    baseline: Figures
    model: Figures


def time_split(data: FdaData, features: Sequence[str] = ("ambient",), *, ridge: float = 0.0,
               thresholds: tuple[float, float] = (37.3, 38.0), site: str = "canthus") -> list[TimeSplit]:
    """A check of transfer across time (seasons, rooms, the camera's drift): early -> late and late -> early.

    Model and baseline (``site`` + the training half's mean offset) on the subjects that have the site.
    Empty when the data has no usable dates or they do not split.
    """
    _check_site(site)
    data = data.with_site(site)
    feats = (site, *(f for f in features if f != site))
    known = ~np.isnan(data.day)
    if known.sum() < 20:
        return []
    median = float(np.median(data.day[known]))
    early = known & (data.day < median)
    late = known & (data.day >= median)
    if early.sum() < 10 or late.sum() < 10:
        return []
    out = []
    for direction, train, test in (("early -> late", early, late), ("late -> early", late, early)):
        train_data, test_data = data.subset(train), data.subset(test)
        linear = _fit_linear(train_data, feats, ridge)
        offset = float(np.mean(train_data.oral - train_data.column(site)))
        out.append(TimeSplit(direction, int(train.sum()), int(test.sum()),
                             figures(test_data.column(site) + offset, test_data.oral, thresholds),
                             figures(linear.predict(test_data), test_data.oral, thresholds)))
    return out


# ============================================================================================== choosing a model
#: What the station reads at run time, or can read from regions it already finds: :func:`compare` chooses only
#: among models built from these. ``face_max`` is the hottest pixel of the face (the engine's reading, see
#: ``models/README.md``); ``forehead_max`` the forehead region's hottest pixel, which the station reads for
#: spectacle wearers. The forehead's centre (``forehead``) and humidity are shown, never chosen.
STATION_READABLE = ("canthus", "forehead_mouth", "forehead_max", "face_max", "ambient", "distance")

#: The candidates ``station body-model compare`` tries, each a primary reading then its extras. Fixed before
#: the comparison was run, so that the choice cannot be steered by adding a candidate after the fact.
COMPARE_CANDIDATES: tuple[tuple[str, ...], ...] = (
    ("canthus",),
    ("canthus", "ambient"),
    ("canthus", "ambient", "distance"),
    ("face_max",),
    ("face_max", "ambient"),
    ("face_max", "ambient", "distance"),
    ("forehead_max", "ambient"),
    ("forehead_mouth", "ambient"),
    ("canthus", "face_max"),
    ("canthus", "face_max", "ambient"),
    ("canthus", "face_max", "ambient", "distance"),
    ("canthus", "forehead_max", "ambient"),
    ("canthus", "ambient", "humidity"),
)
#: The inputs of the model shipped before the comparison (``fda-flir-linear-v1@20bbb1232cdc``): the reference.
PREVIOUS_INPUTS = ("canthus", "ambient")

#: The selection rule's margins (see :func:`choose`; written down before the comparison was run).
RULE_AUC_MARGIN = 0.005
RULE_PERIOD_MARGIN_C = 0.010
RULE_ROUND_MARGIN_C = 0.010
RULE_MAE_TIE_C = 0.002
#: A gap of more than this many days between two measuring days starts a new collection period.
PERIOD_GAP_DAYS = 30

SELECTION_RULE = (
    f"Among the candidates the station can read, keep those whose CV AUC is within {RULE_AUC_MARGIN} of the best; "
    f"whose worst MAE with one collection period left out is at most the shipped model's + "
    f"{RULE_PERIOD_MARGIN_C:.3f} °C; and whose worst MAE on a single round's readings is at most the shipped "
    f"model's + {RULE_ROUND_MARGIN_C:.3f} °C. Of those, the lowest CV MAE wins; candidates within "
    f"{RULE_MAE_TIE_C:.3f} °C of it are a tie, settled by fewer inputs, then by the shipped model, then by the "
    "lower MAE. If none is left, the shipped model stays."
)


def collection_periods(day: np.ndarray, gap_days: int = PERIOD_GAP_DAYS) -> tuple[np.ndarray, tuple[str, ...]]:
    """Each subject's collection period (-1 where the date is unknown) and the periods' labels.

    A period is a run of measuring days with no gap longer than ``gap_days``: in the FDA's FLIR half
    that is four campaigns (Nov-Dec 2016, Feb-Apr 2017, Oct-Dec 2017, Jan-May 2018), each a season with
    its own rooms, weather and people. Leaving one out at a time asks whether a model fitted on the
    others holds there: a stricter check across time than a random fold. Data from a single campaign
    is split at its median date instead, so that there is always a before and an after when the dates
    allow one; no dates, or a single day, gives no periods.
    """
    day = np.asarray(day, dtype=float)
    period = np.full(day.shape, -1, dtype=int)
    known = ~np.isnan(day)
    days = np.unique(day[known])
    if days.size < 2:
        return period, ()

    def show(ordinal: float) -> str:
        return dt.date.fromordinal(int(ordinal)).strftime("%Y-%m-%d")

    cuts = np.flatnonzero(np.diff(days) > gap_days)
    starts = np.r_[days[0], days[cuts + 1]]
    ends = np.r_[days[cuts], days[-1]]
    if starts.size < 2:  # one campaign: before and after its median date
        median = float(np.median(day[known]))
        late = day > median if (day[known] < median).sum() == 0 else day >= median
        period[known] = np.where(late[known], 1, 0)
        first_late = float(day[known & late].min())
        last_early = float(day[known & ~late].max())
        return period, (f"{show(days[0])}..{show(last_early)}", f"{show(first_late)}..{show(days[-1])}")
    period[known] = np.searchsorted(starts, day[known], side="right") - 1
    return period, tuple(f"{show(a)[:7]}..{show(b)[:7]}" for a, b in zip(starts, ends, strict=True))


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's figures in :func:`compare`, all on held-out subjects.

    ``cv``: 10-fold (by default) cross-validation by subject, pooled. ``equal_spec_*``: its sensitivity
    where it is as specific as the canthus constant offset at 37.5 °C (the same yardstick as
    ``station body-model fit``). ``round_mae``: the same fold models fed one round's readings (1-4) in
    place of the subject's mean over rounds, on the subjects that have every compared reading in that
    round: the station reads a person once. ``period_mae``: the model fitted without each collection
    period (:func:`collection_periods`) and tested on it.
    """

    inputs: tuple[str, ...]
    cv: Figures
    fold_mae: tuple[float, ...]
    equal_spec_sens: float
    equal_spec_threshold_c: float
    round_mae: tuple[float, ...]
    period_mae: tuple[float, ...]
    coefficient_mean: dict[str, float]
    predictions: np.ndarray = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        return " + ".join(self.inputs)

    @property
    def readable(self) -> bool:
        """Whether the station can read every input (only these can be chosen)."""
        return all(f in STATION_READABLE for f in self.inputs)

    @property
    def worst_round(self) -> float:
        return _worst(self.round_mae)

    @property
    def round_spread(self) -> float:
        return _spread(self.round_mae)

    @property
    def worst_period(self) -> float:
        return _worst(self.period_mae)

    @property
    def period_spread(self) -> float:
        return _spread(self.period_mae)


def _worst(values: Sequence[float]) -> float:
    known = [v for v in values if math.isfinite(v)]
    return max(known) if known else math.nan


def _spread(values: Sequence[float]) -> float:
    known = [v for v in values if math.isfinite(v)]
    return max(known) - min(known) if len(known) > 1 else math.nan


@dataclass(frozen=True)
class Choice:
    """What :func:`choose` kept, dropped and picked, with the gates' values, so that a printout can show why."""

    chosen: tuple[str, ...]
    auc_gate: float
    period_gate: float  # NaN: no periods, the gate was not applied
    round_gate: float  # NaN: no rounds, the gate was not applied
    tied: tuple[tuple[str, ...], ...]
    dropped: Mapping[tuple[str, ...], str]


def choose(rows: Sequence[CandidateResult], previous: Sequence[str] = PREVIOUS_INPUTS) -> Choice:
    """The selection rule (:data:`SELECTION_RULE`), applied to :func:`compare`'s candidates.

    1. Only candidates whose every input the station can read (:data:`STATION_READABLE`).
    2. Ranking: CV AUC >= the best such candidate's - :data:`RULE_AUC_MARGIN`. AUC is what carries
       best to another camera: a camera reading d °C high shifts every estimate alike, so the ranking
       of people survives it where the MAE does not.
    3. Across time: the worst MAE with one collection period left out (:func:`collection_periods`) at
       most the shipped model's + :data:`RULE_PERIOD_MARGIN_C`. A model that holds in fewer seasons
       than the one in service is a step back at a new entrance, whatever its average.
    4. Across rounds: the worst MAE on one round's readings at most the shipped model's +
       :data:`RULE_ROUND_MARGIN_C`. The study averaged four rounds; the station reads a person once,
       so a reading that is good only on average (one that a breath, a drink or a closed mouth moves)
       must show it here.
    5. Of the survivors, the lowest CV MAE; candidates within :data:`RULE_MAE_TIE_C` of it are a tie,
       settled by fewer inputs (each is one more reading to get wrong at run time), then by ``previous``
       (the shipped model: no change without a reason), then by the lower MAE. Nobody left: ``previous``.

    The margins are about the noise of the checks: 0.002 °C of MAE and 0.005 of AUC are what one fold
    seed against another moves (``models/README.md``), 0.01 °C about what a held-out period of 70-420
    people or a round of 1000 does.

    Why the robustness gates are measured against the shipped model and not against the best candidate:
    the rule was first written with every gate "within the margin of the best", and on the FDA data that
    left nobody, because the candidate that holds best across periods (the face's maximum) is the one
    that holds worst across rounds. A sequence of gates, each measured among the survivors of the one
    before, would make the answer depend on the order of the gates. Measured against the model in
    service, each gate asks one question that does not depend on the others: is this candidate at
    least about as robust as what the station has now? ``models/README.md`` tells this in full.

    Raises
    ------
    StationError
        When no candidate can be read by the station, or ``previous`` is not among ``rows``.
    """
    previous = tuple(previous)
    eligible = [r for r in rows if r.readable]
    if not eligible:
        raise StationError("choose: no candidate the station can read")
    shipped = next((r for r in eligible if r.inputs == previous), None)
    if shipped is None:
        raise StationError(f"choose: the shipped model's inputs ({' + '.join(previous)}) must be a candidate")
    dropped: dict[tuple[str, ...], str] = {r.inputs: "the station cannot read " + ", ".join(
        f for f in r.inputs if f not in STATION_READABLE) for r in rows if not r.readable}
    auc_gate = max(r.cv.auc for r in eligible) - RULE_AUC_MARGIN
    period_gate = shipped.worst_period + RULE_PERIOD_MARGIN_C  # NaN without periods: the gate is not applied
    round_gate = shipped.worst_round + RULE_ROUND_MARGIN_C
    survivors = []
    for r in eligible:
        if not r.cv.auc >= auc_gate - 1e-12:
            dropped[r.inputs] = f"AUC {r.cv.auc:.4f} < {auc_gate:.4f}"
        elif math.isfinite(period_gate) and not r.worst_period <= period_gate + 1e-12:
            dropped[r.inputs] = f"worst period MAE {r.worst_period:.4f} > {period_gate:.4f}"
        elif math.isfinite(round_gate) and not r.worst_round <= round_gate + 1e-12:
            dropped[r.inputs] = f"worst round MAE {r.worst_round:.4f} > {round_gate:.4f}"
        else:
            survivors.append(r)
    if not survivors:
        return Choice(chosen=previous, auc_gate=auc_gate, period_gate=period_gate, round_gate=round_gate,
                      tied=(), dropped=MappingProxyType(dropped))
    best = min(r.cv.mae_c for r in survivors)
    tied = [r for r in survivors if r.cv.mae_c <= best + RULE_MAE_TIE_C + 1e-12]
    chosen = min(tied, key=lambda r: (len(r.inputs), r.inputs != previous, r.cv.mae_c))
    for r in survivors:
        if r not in tied:
            dropped[r.inputs] = f"MAE {r.cv.mae_c:.4f} > {best:.4f} + {RULE_MAE_TIE_C:.3f}"
        elif r is not chosen:
            why = ("more inputs" if len(r.inputs) > len(chosen.inputs) else
                   "not the shipped model" if chosen.inputs == previous else "a higher MAE")
            dropped[r.inputs] = f"tied on MAE, lost on {why}"
    return Choice(chosen=chosen.inputs, auc_gate=auc_gate, period_gate=period_gate, round_gate=round_gate,
                  tied=tuple(r.inputs for r in tied), dropped=MappingProxyType(dropped))


@dataclass(frozen=True)
class Comparison:
    """:func:`compare`'s answer: every candidate on the same subjects, folds and periods, and the choice."""

    n: int
    positives: int
    n_left_out: int  # subjects without every compared reading
    folds: int
    seed: int
    thresholds: tuple[float, float]
    baseline: Figures  # canthus + the training folds' mean offset
    equal_spec_target: float
    rows: tuple[CandidateResult, ...]
    skipped: tuple[tuple[tuple[str, ...], str], ...]
    periods: tuple[tuple[str, int], ...]  # (label, subjects)
    round_n: tuple[int, ...]  # subjects compared in each round
    choice: Choice

    def row(self, inputs: Sequence[str]) -> CandidateResult:
        for r in self.rows:
            if r.inputs == tuple(inputs):
                return r
        raise KeyError(" + ".join(inputs))

    @property
    def chosen(self) -> CandidateResult:
        return self.row(self.choice.chosen)


def _check_candidates(candidates: Sequence[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    allowed = tuple(SITES) + CANDIDATE_FEATURES
    out = []
    for inputs in candidates:
        inputs = tuple(inputs)
        if (not inputs or inputs[0] not in SKIN_INPUTS or len(set(inputs)) != len(inputs)
                or not all(f in allowed for f in inputs)):
            raise StationError(f"compare: candidate {_show(list(inputs))}: expected a skin reading "
                               f"({', '.join(SKIN_INPUTS)}) then any of {', '.join(allowed)}, each once")
        out.append(inputs)
    return tuple(out)


def compare(data: FdaData, candidates: Sequence[Sequence[str]] = COMPARE_CANDIDATES, *,
            thresholds: tuple[float, float] = (37.3, 38.0), folds: int = CV_FOLDS, seed: int = CV_SEED,
            reference_c: float = REFERENCE_FEVER_C, previous: Sequence[str] = PREVIOUS_INPUTS) -> Comparison:
    """Every candidate (a primary skin reading, then extras) by the same subject-grouped CV, then :func:`choose`.

    All candidates are judged on the same people: those with every skin reading any candidate uses
    (the canthus always, for the baseline); a candidate whose reading no subject of the file has is
    skipped, with the reason. Plain least squares (no ridge) for all. Besides the pooled CV figures,
    each candidate is checked across rounds and across collection periods (:class:`CandidateResult`).

    Raises
    ------
    StationError
        One line, when the candidates are malformed or too few subjects are left for the folds.
    """
    candidates = _check_candidates(candidates)
    if tuple(previous) not in candidates:  # the rule measures robustness against it
        candidates = (tuple(previous), *candidates)
    skipped: list[tuple[tuple[str, ...], str]] = []
    usable = []
    for inputs in candidates:
        absent = [f for f in inputs if np.isnan(data.column(f)).all()]
        if absent:
            skipped.append((inputs, f"no subject has {', '.join(absent)}"))
        else:
            usable.append(inputs)
    skin = sorted({f for inputs in usable for f in inputs if f in SKIN_INPUTS} | {"canthus"})
    every = np.all([~np.isnan(data.column(f)) for f in skin], axis=0)
    common = data.subset(every)
    fold = subject_folds(common.subject_id, folds, seed)
    pos = common.febrile
    period, labels = collection_periods(common.day)
    round_masks = []
    for k in range(1, 5):
        if common.per_round:
            at = common.at_round(k)
            round_masks.append(np.all([~np.isnan(at.column(f)) for f in skin], axis=0))
        else:
            round_masks.append(np.zeros(common.n, dtype=bool))
    base = np.empty(common.n)
    for k in range(folds):
        test = fold == k
        offset = float(np.mean(common.oral[~test] - common.canthus[~test]))
        base[test] = common.canthus[test] + offset
    baseline = figures(base, common.oral, thresholds, reference_c)
    target = baseline.spec_reference

    rows = []
    for inputs in usable:
        try:
            rows.append(_candidate(common, inputs, fold, folds, period, len(labels), round_masks, thresholds,
                                   reference_c, target))
        except StationError as exc:  # e.g. a reading that is constant or collinear in this file
            skipped.append((inputs, str(exc).split(": ", 1)[-1]))
    if not rows:
        raise StationError(f"{data.path}: no candidate could be fitted (" + "; ".join(
            f"{' + '.join(i)}: {why}" for i, why in skipped) + ")")
    return Comparison(
        n=common.n, positives=int(pos.sum()), n_left_out=data.n - common.n, folds=folds, seed=seed,
        thresholds=tuple(thresholds), baseline=baseline, equal_spec_target=target, rows=tuple(rows),
        skipped=tuple(skipped), periods=tuple((label, int((period == p).sum())) for p, label in enumerate(labels)),
        round_n=tuple(int(m.sum()) for m in round_masks), choice=choose(rows, previous))


def _candidate(data: FdaData, inputs: tuple[str, ...], fold: np.ndarray, folds: int, period: np.ndarray,
               n_periods: int, round_masks: list[np.ndarray], thresholds: tuple[float, float], reference_c: float,
               target: float) -> CandidateResult:
    """One candidate's held-out figures: see :class:`CandidateResult`."""
    pred = np.empty(data.n)
    by_round = np.full((4, data.n), math.nan)
    rounds = [data.at_round(k) for k in range(1, 5)] if data.per_round else []
    coefs, fold_mae = [], []
    for k in range(folds):
        test = fold == k
        linear = _fit_inputs(data.subset(~test), inputs, 0.0)
        coefs.append(linear.coefficients)
        pred[test] = linear.predict(data.subset(test))
        fold_mae.append(float(np.mean(np.abs(pred[test] - data.oral[test]))))
        for j, at in enumerate(rounds):
            by_round[j, test] = linear.predict(at.subset(test))
    round_mae = tuple(float(np.mean(np.abs(by_round[j, m] - data.oral[m]))) if m.any() else math.nan
                      for j, m in enumerate(round_masks))
    period_mae = []
    for p in range(n_periods):
        test = period == p
        train = (period >= 0) & ~test
        linear = _fit_inputs(data.subset(train), inputs, 0.0)
        period_mae.append(float(np.mean(np.abs(linear.predict(data.subset(test)) - data.oral[test]))))
    sens, _, thr = sensitivity_at_specificity(pred, data.febrile, target)
    return CandidateResult(
        inputs=inputs, cv=figures(pred, data.oral, thresholds, reference_c), fold_mae=tuple(fold_mae),
        equal_spec_sens=sens, equal_spec_threshold_c=thr, round_mae=round_mae, period_mae=tuple(period_mae),
        coefficient_mean={f: float(m) for f, m in zip(inputs, np.mean(coefs, axis=0), strict=True)},
        predictions=pred)


@dataclass(frozen=True)
class TransferRow:
    """One candidate of :func:`transfer`: its figures on the test file, or why it was not tried."""

    inputs: tuple[str, ...]
    figures: Figures | None
    equal_spec_sens: float = math.nan
    equal_spec_threshold_c: float = math.nan
    why_not: str = ""


@dataclass(frozen=True)
class Transfer:
    """Each candidate fitted on all of one file and tested on another (e.g. the study's other camera).

    ``equal_spec_*`` as in :class:`CandidateResult`: at the specificity the canthus constant offset
    (fitted on the first file) has on the second at 37.5 °C.
    """

    n: int
    positives: int
    baseline: Figures  # canthus + the first file's mean offset
    rows: tuple[TransferRow, ...]


def transfer(train: FdaData, test: FdaData, candidates: Sequence[Sequence[str]] = COMPARE_CANDIDATES, *,
             thresholds: tuple[float, float] = (37.3, 38.0), reference_c: float = REFERENCE_FEVER_C) -> Transfer:
    """Fit every candidate on ``train`` and give its figures on ``test``: the check on another camera.

    Nothing is chosen here: the choice is made on ``train`` alone (:func:`compare`), and this is the
    check that follows it. All candidates are tested on the same subjects of ``test``: those with every
    skin reading of the candidates that both files have.
    """
    candidates = _check_candidates(candidates)
    rows: dict[tuple[str, ...], TransferRow] = {}
    usable = []
    for inputs in candidates:
        absent = [f"{f} ({where})" for f in inputs for where, d in (("fitting file", train), ("test file", test))
                  if np.isnan(d.column(f)).all()]
        if absent:
            rows[inputs] = TransferRow(inputs, None, why_not="no subject has " + ", ".join(absent))
        else:
            usable.append(inputs)
    skin = sorted({f for inputs in usable for f in inputs if f in SKIN_INPUTS} | {"canthus"})
    on_train = train.subset(np.all([~np.isnan(train.column(f)) for f in skin], axis=0))
    on_test = test.subset(np.all([~np.isnan(test.column(f)) for f in skin], axis=0))
    if on_train.n == 0 or on_test.n == 0:
        raise StationError(f"{test.path}: no subject has every reading compared ({', '.join(skin)})")
    offset = float(np.mean(on_train.oral - on_train.canthus))
    baseline = figures(on_test.canthus + offset, on_test.oral, thresholds, reference_c)
    for inputs in usable:
        try:
            linear = _fit_inputs(on_train, inputs, 0.0)
        except StationError as exc:
            rows[inputs] = TransferRow(inputs, None, why_not=str(exc).split(": ", 1)[-1])
            continue
        body = linear.predict(on_test)
        sens, _, thr = sensitivity_at_specificity(body, on_test.febrile, baseline.spec_reference)
        rows[inputs] = TransferRow(inputs, figures(body, on_test.oral, thresholds, reference_c), sens, thr)
    return Transfer(n=on_test.n, positives=int(on_test.febrile.sum()), baseline=baseline,
                    rows=tuple(rows[inputs] for inputs in candidates))


__all__ = [
    "CANDIDATE_FEATURES",
    "COMPARE_CANDIDATES",
    "PREVIOUS_INPUTS",
    "SELECTION_RULE",
    "SKIN_INPUTS",
    "STATION_READABLE",
    "CandidateResult",
    "Choice",
    "Comparison",
    "Transfer",
    "TransferRow",
    "choose",
    "collection_periods",
    "compare",
    "transfer",
    "DEFAULT_GLASSES_MODEL_PATH",
    "DEFAULT_MODEL_PATH",
    "DEFAULT_NAMES",
    "GLASSES_SITE",
    "MODEL_FEATURES",
    "REFERENCE_FEVER_C",
    "SITES",
    "BodyModel",
    "CrossValidation",
    "FdaData",
    "Figures",
    "TimeSplit",
    "cross_validate",
    "evaluate",
    "figures",
    "fit",
    "load_glasses_model",
    "load_model",
    "offset_figures",
    "read_fda_csv",
    "roc_auc",
    "sensitivity_at_specificity",
    "subject_folds",
    "time_split",
]
