"""The figures a body-temperature estimate is judged on: MAE, bias, ROC AUC, sensitivity and specificity.

Kept apart from the data (:mod:`station.fitting.fda`) and the fitting (:mod:`station.fitting.fit`)
because it is pure arithmetic on two arrays, estimated body temperature and the reference (oral)
temperature, and both of them use it: a fit reports its cross-validated figures, a check of a shipped
model its figures on a file, a comparison the figures of every candidate. One definition means every
command prints the same numbers for the same estimates.

:class:`Figures` are what the station is judged on: mean absolute error of the estimate, ROC AUC for
oral >= 37.5 °C (:data:`REFERENCE_FEVER_C`; computed by hand, Mann-Whitney with ties counted a half),
and sensitivity and specificity for that same condition at the station's ``elevated_c`` and
``fever_c`` thresholds applied to the estimate (rounded to 0.01 °C and inclusive, as
:func:`station.screen.alarm.classify` does).

Pure numpy and the standard library: no pandas, no scikit-learn.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: The condition the figures are about: oral temperature at or above this is "febrile" (FDA study, ISO 80601-2-59).
REFERENCE_FEVER_C = 37.5


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


def rate(flag: np.ndarray, among: np.ndarray) -> float:
    """The share of ``among`` that ``flag`` marks (a sensitivity or specificity); NaN when ``among`` is empty."""
    return float(flag[among].mean()) if among.any() else math.nan


def at_threshold(body: np.ndarray, threshold_c: float) -> np.ndarray:
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
        return {k: round4(v) if isinstance(v, float) else v for k, v in asdict(self).items()}


def round4(x: float) -> float | None:
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
        flag = at_threshold(body, t)
        rates[f"sens_{key}"] = rate(flag, pos)
        rates[f"spec_{key}"] = rate(~flag, neg)
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
    return rate(flag, positive), rate(~flag, ~positive), threshold


__all__ = ["REFERENCE_FEVER_C", "Figures", "at_threshold", "figures", "rate", "roc_auc", "round4",
           "sensitivity_at_specificity"]
