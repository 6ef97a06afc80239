"""Choosing a model's inputs: every candidate compared on the same people, then a rule fixed in advance.

Offline science, run by ``station body-model compare`` (and the last part of ``evaluate``); never
imported while screening. It answers which inputs the shipped model should read, not what their
coefficients are: the coefficients are fitted by :mod:`station.fitting.fit`, whose least squares it
reuses so that a candidate here and the model ``fit`` writes are the same model.

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

Pure numpy and the standard library: no pandas, no scikit-learn.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from station.errors import StationError
from station.fitting.fda import CANDIDATE_FEATURES, SKIN_INPUTS, FdaData
from station.fitting.fit import CV_FOLDS, CV_SEED, _fit_inputs, subject_folds  # _fit_inputs: this package's own
from station.fitting.metrics import REFERENCE_FEVER_C, Figures, figures, sensitivity_at_specificity
from station.screen.body_model import SITES, show_value

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
            raise StationError(f"compare: candidate {show_value(list(inputs))}: expected a skin reading "
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
    "COMPARE_CANDIDATES",
    "PERIOD_GAP_DAYS",
    "PREVIOUS_INPUTS",
    "RULE_AUC_MARGIN",
    "RULE_MAE_TIE_C",
    "RULE_PERIOD_MARGIN_C",
    "RULE_ROUND_MARGIN_C",
    "SELECTION_RULE",
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
]
