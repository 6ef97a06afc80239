"""Fitting a body-temperature model to people, and checking it on people it was not fitted on.

Offline science, run by ``station body-model fit|evaluate``: never imported while screening (an
import-linter contract keeps :mod:`station.screen` and :mod:`station.pipeline` from it). What it makes
is a runtime :class:`~station.screen.body_model.BodyModel`, which the station loads from its JSON.

:func:`fit` fits a small linear model (least squares on centred inputs, optionally pulled towards the
constant offset by a ridge) on data read by :func:`station.fitting.fda.read_fda_csv`, and records in
the model's provenance where its numbers come from and how it did on new people:
:func:`cross_validate` (k folds by subject, :data:`CV_FOLDS` and :data:`CV_SEED`, against the site +
the training folds' mean offset that the station used before) and :func:`time_split` (fitted before
the median date, tested after it, and back). :func:`evaluate` and :func:`offset_figures` give the
figures (:mod:`station.fitting.metrics`) of a given model, or of a constant offset, on a file.

Choosing which inputs a model should have is :mod:`station.fitting.selection`, which reuses the least
squares here.

Pure numpy and the standard library: no pandas, no scikit-learn.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from station.errors import StationError
from station.fitting.fda import (
    CANDIDATE_FEATURES,
    FDA_DATA_SET,
    RESEARCH_FEATURES,
    SKIN_INPUTS,
    FdaData,
)
from station.fitting.metrics import (
    REFERENCE_FEVER_C,
    Figures,
    at_threshold,
    figures,
    rate,
    round4,
    sensitivity_at_specificity,
)
from station.screen.body_model import DEFAULT_NAMES, MODEL_FEATURES, SITES, BodyModel, check_site

#: Cross-validation: folds by subject, with this seed, unless told otherwise.
CV_FOLDS = 10
CV_SEED = 7


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

    :func:`station.fitting.selection.compare` uses it directly, as its candidates may lead with a reading
    that is not a site (``face_max``, ``forehead_max``); the caller makes sure every subject has the primary reading.
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
    check_site(site)
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
                            "baseline_mae_c": round4(s.baseline.mae_c), "model_mae_c": round4(s.model.mae_c),
                            "baseline_bias_c": round4(s.baseline.bias_c), "model_bias_c": round4(s.model.bias_c)}
                           for s in time_split(usable, features, site=site, ridge=ridge, thresholds=thresholds)]
    return BodyModel(
        name=name, version=version, features=linear.features, intercept_c=r6(linear.intercept),
        coefficients={f: r6(b) for f, b in zip(linear.features, linear.coefficients, strict=True)},
        centres={f: r6(c) for f, c in zip(linear.features, linear.centres, strict=True)},
        ranges={f: (r6(lo), r6(hi)) for f, (lo, hi) in zip(linear.features[1:], linear.ranges[1:], strict=True)},
        provenance=info)


# ============================================================================================== checking a model
def predict_data(model: BodyModel, data: FdaData) -> np.ndarray:
    """Estimates of ``model`` for every subject of ``data``, from the model's site (NaN where it is missing).

    A function here, not a method of :class:`~station.screen.body_model.BodyModel`: the runtime model
    must not know the study's data (so that screening never loads the reader); the fitting side knows
    both and feeds the data's columns to :meth:`~station.screen.body_model.BodyModel.predict`.
    """
    return np.asarray(model.predict(data.column(model.site), data.ambient, data.distance), dtype=float)


def evaluate(model: BodyModel, data: FdaData, thresholds: tuple[float, float],
             reference_c: float = REFERENCE_FEVER_C) -> Figures:
    """The model's figures at the thresholds (elevated_c, fever_c) on estimated body temperature.

    On the subjects of ``data`` that have the model's site (the others cannot be estimated by it).
    """
    data = data.with_site(model.site)
    return figures(predict_data(model, data), data.oral, thresholds, reference_c)


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
        r = round4
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
    check_site(site)
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
        spec_train = rate(~at_threshold(train_data.column(site) + offset, reference_c), ~train_pos)
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
        equal_spec_spec=spec, equal_spec_threshold_c=thr, trained_sens=rate(trained_flag, pos),
        trained_spec=rate(~trained_flag, ~pos), fold_mae_baseline=tuple(fold_mae_b),
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
    check_site(site)
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


__all__ = [
    "CV_FOLDS",
    "CV_SEED",
    "CrossValidation",
    "TimeSplit",
    "cross_validate",
    "evaluate",
    "fit",
    "offset_figures",
    "predict_data",
    "subject_folds",
    "time_split",
]
