"""Body temperature from a skin temperature: the runtime model the alarm policy applies to every decision.

The station measures skin; the thresholds are about body temperature. :class:`BodyModel` is the step
between them: a small linear model, stored as JSON with its provenance, loaded once at start-up
(:func:`load_model`, :func:`load_glasses_model`) and applied per frame (:meth:`BodyModel.predict`).

This module is only what screening needs at run time: the model, its file format and checks, and the
shipped model files. How a model is made is offline science and lives in :mod:`station.fitting`, which
imports this module and never the other way round (an import-linter contract keeps it so), so that
screening never loads the CSV reader or the fitting code:

- :mod:`station.fitting.fda` reads data in the layout of the FDA's facial and oral temperature study
  (PhysioNet ``face-oral-temp-data``, CC0);
- :mod:`station.fitting.metrics` computes the figures the station is judged on (MAE, ROC AUC,
  sensitivity and specificity);
- :mod:`station.fitting.fit` fits a model (:func:`station.fitting.fit.fit`) and checks it by
  cross-validation by subject against the constant offset the station used before;
- :mod:`station.fitting.selection` compares the candidate inputs and chooses by a rule fixed in advance.

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

Pure numpy and the standard library.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from station.errors import StationError
from station.types import Site

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL_PATH = MODELS_DIR / "body-model.json"
#: The model for people wearing glasses (site ``forehead_mouth``): see :func:`load_glasses_model`.
DEFAULT_GLASSES_MODEL_PATH = MODELS_DIR / "body-model-glasses.json"
SCHEMA_VERSION = 1

#: Where the station can read skin temperature, and the study's columns behind each (a model's first feature).
#: The canthus text is also the canthus model's provenance entry, so it must not change (see
#: :func:`station.fitting.fit.fit`). Here, not in the fitting package, because the model checks its site against it.
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

#: Inputs a model may use besides its site's skin temperature: the station can measure them at run time.
MODEL_FEATURES = ("ambient", "distance")

#: A plausible body temperature (°C): a model's intercept must be one, and the FDA reader (in
#: :mod:`station.fitting.fda`) refuses a reference (oral) temperature outside it.
BODY_RANGE_C = (30.0, 45.0)


def check_site(site: Any, where: str = "site") -> str:
    """``site`` if it is one of :data:`SITES`, else one StationError line naming ``where``.

    Public because the fitting package checks the sites it is asked about with the same words.
    """
    if site not in SITES:
        raise StationError(f"{where}: expected one of {', '.join(SITES)}, got {show_value(site)}")
    return site


# ============================================================================================== the model
def _finite(value: Any, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StationError(f"{where}: expected a finite number, got {show_value(value)}")
    if not low <= value <= high:
        raise StationError(f"{where}: expected {low:g} to {high:g}, got {value!r}")
    return float(value)


def show_value(value: Any) -> str:
    """A bad value as an error line quotes it: JSON-like, on one line, at most 40 characters."""
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
                               f"got {show_value(self.name)}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise StationError(f"{where}: version: expected an integer >= 1, got {show_value(self.version)}")
        feats = self.features
        if (not isinstance(feats, tuple) or not feats or feats[0] not in SITES
                or len(set(feats)) != len(feats) or not all(f in MODEL_FEATURES for f in feats[1:])):
            others = " or ".join(repr(str(s)) for s in SITES if s != Site.CANTHUS)
            raise StationError(f"{where}: features: expected 'canthus' then any of {', '.join(MODEL_FEATURES)} "
                               f"(each once; the site {others} may stand first instead of 'canthus'), "
                               f"got {show_value(list(feats) if isinstance(feats, tuple) else feats)}")
        _finite(self.intercept_c, f"{where}: intercept_c", *BODY_RANGE_C)
        for key, table in (("coefficients", self.coefficients), ("centres", self.centres)):
            if not isinstance(table, Mapping) or set(table) != set(feats):
                got = sorted(table) if isinstance(table, Mapping) else table
                raise StationError(f"{where}: {key}: expected a value for each of {', '.join(feats)}, "
                                   f"got {show_value(got)}")
            for f in feats:
                _finite(table[f], f"{where}: {key}.{f}")
        _finite(self.coefficients[feats[0]], f"{where}: coefficients.{feats[0]}", 0.2, 2.0)
        if not isinstance(self.ranges, Mapping) or set(self.ranges) != set(feats[1:]):
            got = sorted(self.ranges) if isinstance(self.ranges, Mapping) else self.ranges
            raise StationError(f"{where}: ranges: expected a [low, high] for each of {', '.join(feats[1:]) or 'none'}, "
                               f"got {show_value(got)}")
        for f, pair in self.ranges.items():
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise StationError(f"{where}: ranges.{f}: expected [low, high], got {show_value(pair)}")
            low = _finite(pair[0], f"{where}: ranges.{f}[0]")
            high = _finite(pair[1], f"{where}: ranges.{f}[1]")
            if low > high:
                raise StationError(f"{where}: ranges.{f}: expected low <= high, got {show_value(list(pair))}")
        if not isinstance(self.provenance, dict):
            raise StationError(f"{where}: provenance: expected a table, got {show_value(self.provenance)}")
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
            raise StationError(f"{where}: expected a JSON object, got {show_value(doc)}")
        if doc.get("schema_version") != SCHEMA_VERSION:
            got = show_value(doc.get("schema_version"))
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
            raise StationError(f"{where}: features: expected a list of names, got {show_value(feats)}")
        ranges = doc["ranges"]
        if isinstance(ranges, dict):
            ranges = {k: tuple(v) if isinstance(v, list) else v for k, v in ranges.items()}
        provenance = doc["provenance"]
        if isinstance(provenance, dict):
            for key, kind in (("data_set", str), ("n_subjects", int), ("fitted", str)):
                value = provenance.get(key)
                if not isinstance(value, kind) or isinstance(value, bool):
                    raise StationError(f"{where}: provenance.{key}: expected a {kind.__name__}, "
                                       f"got {show_value(value)}")
        model = cls.__new__(cls)
        for name, value in (("name", doc["name"]), ("version", doc["version"]), ("features", tuple(feats)),
                            ("intercept_c", doc["intercept_c"]), ("coefficients", doc["coefficients"]),
                            ("centres", doc["centres"]), ("ranges", ranges), ("provenance", provenance)):
            object.__setattr__(model, name, value)
        model._check(where)
        if "id" in doc and doc["id"] != model.id:
            raise StationError(f"{where}: id: the file says {show_value(doc['id'])} but its parameters hash to "
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
        check_site(site, "load_model: site")
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

__all__ = [
    "BODY_RANGE_C",
    "DEFAULT_GLASSES_MODEL_PATH",
    "DEFAULT_MODEL_PATH",
    "DEFAULT_NAMES",
    "GLASSES_SITE",
    "MODEL_FEATURES",
    "MODELS_DIR",
    "SCHEMA_VERSION",
    "SITES",
    "BodyModel",
    "check_site",
    "load_glasses_model",
    "load_model",
    "show_value",
]
