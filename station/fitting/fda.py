"""Data in the layout of the FDA's facial and oral temperature study: the reader and what it returns.

The study (PhysioNet ``face-oral-temp-data``, CC0; :data:`FDA_CITATION`) is what the shipped models
were fitted on and are checked against. Reading it is offline work, done by ``station body-model
fit|evaluate|compare`` and never while screening, so it lives here and not beside the runtime model
(:mod:`station.screen.body_model`): the station imports the model without ever loading a CSV reader.

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
model at hand reads (its :attr:`~station.screen.body_model.BodyModel.features`); an impossible value in a
column it does not read is read as missing, one in a column it reads leaves that subject out, and both are
said in the data's notes.

Pure numpy and the standard library: no pandas.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from station.errors import StationError
from station.fitting.metrics import REFERENCE_FEVER_C
from station.screen.body_model import BODY_RANGE_C, MODEL_FEATURES, SITES, check_site, show_value

#: Further columns of the study that cross-validation can try, but that a model cannot use (the station does not
#: measure them at run time; see ``models/README.md``).
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
# The body range (for aveOralM) is the runtime model's BODY_RANGE_C, the range its intercept must lie in.
_SKIN_RANGE_C = (20.0, 45.0)
_AMBIENT_RANGE_C = (-30.0, 50.0)
_DISTANCE_RANGE_M = (0.2, 5.0)
_HUMIDITY_RANGE = (0.0, 100.0)

#: Each input read from the cells: its plausible range and unit.
_PLAUSIBLE: Mapping[str, tuple[tuple[float, float], str]] = MappingProxyType({
    "oral": (BODY_RANGE_C, "°C"), "canthus": (_SKIN_RANGE_C, "°C"), "forehead_mouth": (_SKIN_RANGE_C, "°C"),
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
    person once, not four times, so :func:`~station.fitting.selection.compare` also checks each model on
    one round at a time.
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
        check_site(site)
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
                           f"got {show_value(inputs if isinstance(inputs, str) else list(inputs))}")
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
        What the model at hand reads: its :attr:`~station.screen.body_model.BodyModel.features` (the site
        first, then e.g. ``ambient``), or for a fit the site and the chosen features. The reference
        ``aveOralM`` is always read. ``None`` (no model named): only the reference is read, so an
        impossible value anywhere else is read as missing; pass a model's features to figure or fit that model.

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


__all__ = [
    "CANDIDATE_FEATURES",
    "FDA_CITATION",
    "FDA_DATA_SET",
    "FDA_LICENCE",
    "HEADER_ROW",
    "RESEARCH_FEATURES",
    "ROUND_INPUTS",
    "SKIN_INPUTS",
    "FdaData",
    "read_fda_csv",
]
