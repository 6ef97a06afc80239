"""``station body-model fit|compare|evaluate``: the skin-to-body model, fitted to real people, chosen and checked.

Kept apart from ``station/cli/main.py`` so the commands can be read and tested on their own; the main group
adds this one with ``main.add_command(body_model)``. Faults reach the user as one line and exit code 1,
here as under the main group.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path

import click

from station.atomic import atomic_write
from station.cli.group import CONTEXT, StationGroup
from station.errors import StationError
from station.fitting import fda, fit, metrics, selection
from station.screen import body_model as bm


@click.group("body-model", cls=StationGroup, context_settings=CONTEXT)
def body_model() -> None:
    """The skin-to-body temperature model: fit it to people, choose its inputs, check it on people.

    A model reads one site: the canthus (default), or for people wearing glasses, whose lenses hide the
    canthi from the thermal camera, the hottest of the forehead and the mouth (--site forehead_mouth).

    \b
    Examples:
      station body-model fit ../shared/data/fda-facial-oral/FLIR_groups1and2.csv --out my-model.json
      station body-model fit ../shared/data/fda-facial-oral/FLIR_groups1and2.csv --site forehead_mouth --out g.json
      station body-model compare ../shared/data/fda-facial-oral/FLIR_groups1and2.csv
      station body-model evaluate ../shared/data/fda-facial-oral/FLIR_groups1and2.csv
      station body-model evaluate people.csv --model my-model.json
    """


def _station_thresholds() -> tuple[float, float, float]:
    """(elevated_c, fever_c, skin_to_body_offset_c) from the station's settings file."""
    from station.config import default_config_path, load_config

    config = load_config(default_config_path())
    return config.elevated_c, config.fever_c, config.skin_to_body_offset_c


def _features(text: str) -> tuple[str, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    for name in names:
        if name not in bm.MODEL_FEATURES:
            raise StationError(f"--features: {name!r}: expected any of {', '.join(bm.MODEL_FEATURES)}, or none")
    return names


def _f(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else "n/a"


def _group(text: str) -> str:
    return f"{text:<20}"


def _rates(sens: float, spec: float) -> str:
    return _group(f"{_f(sens):<6} {_f(spec):<6}")


def _folds_below(cv: fit.CrossValidation, other: fit.CrossValidation) -> int:
    """In how many folds ``cv``'s model has a lower MAE than ``other``'s (same folds)."""
    return sum(a < b for a, b in zip(cv.fold_mae_model, other.fold_mae_model, strict=True))


#: How the summary line says what each site is (the full text is :data:`station.screen.body_model.SITES`).
_SITE_SHORT = {"canthus": "canthiMax averaged over each subject's rounds",
               "forehead_mouth": "max(T_FH_Max, T_OR_Max) per round, averaged over each subject's rounds"}
#: Where each site's model reads the skin, in words for the operator.
_SITE_READS = {"canthus": "the hottest pixel of the inner canthi (people without glasses)",
               "forehead_mouth": "the hottest of the forehead and the mouth region (people wearing glasses)"}


def _describe(data: fda.FdaData, site: str = "canthus") -> fda.FdaData:
    """Say what the file holds and what the site is; return the subjects that have the site.

    The notes say what the reader read as missing and whom it left out (with a count and the subjects
    named), so the figures that follow can be traced to the people they are about. A file with nobody
    usable for the site is refused before anything is printed: one line, not a summary then an error.
    """
    usable = data.with_site(site)
    if usable.n == 0:
        raise StationError(f"{data.path}: no subject has a {site} value ({bm.SITES[site]})")
    click.echo(f"{Path(data.path).name}: {data.n} subjects, {int(data.febrile.sum())} with oral >= "
               f"{metrics.REFERENCE_FEVER_C} °C (aveOralM); {site} = {_SITE_SHORT[site]}")
    for note in data.notes:
        click.echo(f"note: {note}")
    if usable.n < data.n:
        click.echo(f"note: {data.n - usable.n} subjects without a {site} value left out: {usable.n} subjects, "
                   f"{int(usable.febrile.sum())} febrile")
    return usable


def _label(features: tuple[str, ...], site: str = "canthus") -> str:
    return " + ".join((site,) + features)


def _write(path: Path, text: str) -> None:
    """Write next to the target and rename, so a failed write never leaves half a model."""
    atomic_write(path, text)


@body_model.command("fit", context_settings=CONTEXT)
@click.argument("csv_path", metavar="CSV", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Where to write the model (JSON).")
@click.option("--site", default="canthus", show_default=True, type=click.Choice(list(bm.SITES)),
              help="Where the skin is read: canthus, or forehead_mouth (the hottest of forehead and mouth: for people "
                   "wearing glasses).")
@click.option("--features", "features_text", default="ambient", show_default=True, metavar="LIST",
              help=f"Inputs besides the site, comma-separated, from: {', '.join(bm.MODEL_FEATURES)}; or none.")
@click.option("--ridge", default=0.0, show_default=True, type=click.FloatRange(min=0.0),
              help="Pull towards the constant offset (site slope 1): 0 is least squares, 1 about half-way.")
@click.option("--folds", default=fit.CV_FOLDS, show_default=True, type=click.IntRange(2, 100))
@click.option("--seed", default=fit.CV_SEED, show_default=True, type=int, help="Which subjects go in which fold.")
@click.option("--name", default=None, help="The model's name (its id starts with it; default: "
              + ", ".join(f"{bm.DEFAULT_NAMES[s]} for {s}" for s in bm.SITES) + ").")
@click.option("--model-version", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--data-set", default=fda.FDA_DATA_SET, show_default=False,
              help="What the data is, for the provenance (default: the FDA study).")
@click.option("--citation", default=fda.FDA_CITATION, show_default=False, help="How to cite the data.")
@click.option("--licence", default=fda.FDA_LICENCE, show_default=True, help="The data's licence (SPDX).")
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
def fit_command(csv_path: Path, out: Path, site: str, features_text: str, ridge: float, folds: int, seed: int,
                name: str | None, model_version: int, data_set: str, citation: str, licence: str,
                overwrite: bool) -> None:
    """Fit body temperature to the site's skin (+ FEATURES) on CSV, compare with the constant offset, write FILE.

    CSV is in the layout of the FDA facial/oral study. Prints the cross-validated comparison (folds by
    subject): the baseline (the site + the training folds' mean offset), the chosen model, the model
    without each of its inputs and with each other candidate (for a site other than the canthus also
    the canthus model on the same people), then the figures at the station's thresholds and across
    time. The model and those figures go to FILE. Subjects without the site's value are left out.

    \b
    Examples:
      station body-model fit ../shared/data/fda-facial-oral/FLIR_groups1and2.csv --out models/body-model.json
      station body-model fit ../shared/data/fda-facial-oral/FLIR_groups1and2.csv --site forehead_mouth \\
          --out models/body-model-glasses.json
      station body-model fit people.csv --out site.json --features none --data-set "our entrance, 2026"
    """
    features = _features(features_text)
    default_name = bm.DEFAULT_NAMES[site]
    name = default_name if name is None else name
    if out.exists() and not overwrite:
        raise StationError(f"{out}: exists; choose another file or add --overwrite")
    if out.exists() and out.is_dir():
        raise StationError(f"{out}: is a directory")
    if not out.parent.is_dir():
        raise StationError(f"{out.parent}: no such directory")
    elevated_c, fever_c, _ = _station_thresholds()
    thresholds = (elevated_c, fever_c)
    # What this fit reads decides what a bad cell costs (see fda.read_fda_csv): the candidates tried beside it
    # are only compared, so an impossible value there is read as missing rather than costing a subject.
    data = fda.read_fda_csv(csv_path, (site, *features))
    usable = _describe(data, site)

    def cv_of(feats: tuple[str, ...], on: fda.FdaData = usable, at: str = site) -> fit.CrossValidation:
        return fit.cross_validate(on, feats, site=at, ridge=ridge, thresholds=thresholds, folds=folds, seed=seed)

    chosen = cv_of(features)
    rows: list[tuple[str, fit.CrossValidation | str]] = []
    for f in features:  # without each chosen input
        rows.append((_label(tuple(g for g in features if g != f), site), cv_of(tuple(g for g in features if g != f))))
    rows.append((_label(features, site) + "  (chosen)", chosen))
    for f in fda.CANDIDATE_FEATURES:  # with each other candidate
        if f not in features:
            mark = " †" if f in fda.RESEARCH_FEATURES else ""
            try:
                tried: fit.CrossValidation | str = cv_of(features + (f,))
            except StationError as exc:  # a candidate this data cannot fit (absent, constant) is only reported
                tried = str(exc).split(": ", 1)[-1]
            rows.append((_label(features + (f,), site) + mark, tried))
    # Another site is a stand-in for the canthus where it cannot be read: show what it gives up, on the same
    # people and folds (subjects with both sites), at the same specificity as this site's baseline.
    canthus_row: tuple[str, fit.CrossValidation, fda.FdaData] | None = None
    if site != "canthus":
        both = usable.with_site("canthus")
        if both.n == usable.n:
            canthus_row = (_label(features) + "  (canthus model)", cv_of(features, usable, "canthus"), both)
        else:
            click.echo(f"note: the canthus model is not compared: {usable.n - both.n} of these subjects have no "
                       "canthiMax, so it would be judged on other people")

    base = chosen.baseline
    pos = int(usable.febrile.sum())
    w = max([34] + [len(label) for label, _ in rows] + ([len(canthus_row[0])] if canthus_row else []))
    click.echo("")
    click.echo(f"{folds}-fold cross-validation by subject (seed {seed}); every fold fitted without its held-out "
               "subjects")
    sens_head = f"sens at spec {_f(chosen.equal_spec_target)} (thr °C)"
    click.echo(f"{'':{w}} {'MAE °C':>7} {'AUC':>7}   {sens_head:<28} folds with lower MAE than")
    click.echo(f"{'':{w}} {'':>7} {'':>7}   {'':<28} baseline   chosen")
    click.echo(f"{'constant offset (baseline)':{w}} {base.mae_c:7.4f} {_f(base.auc, 4):>7}   "
               f"{_f(chosen.equal_spec_baseline_sens)} {round(chosen.equal_spec_baseline_sens * pos):>3}/{pos} "
               f"({metrics.REFERENCE_FEVER_C:.2f})")
    for label, cv in rows:
        if isinstance(cv, str):
            click.echo(f"{label:{w}} not tried: {cv}")
            continue
        sens = f"{_f(cv.equal_spec_sens)} {round(cv.equal_spec_sens * pos):>3}/{pos} ({cv.equal_spec_threshold_c:.2f})"
        versus = "" if cv is chosen else f"{_folds_below(cv, chosen):>2}/{folds}"
        click.echo(f"{label:{w}} {cv.model.mae_c:7.4f} {_f(cv.model.auc, 4):>7}   {sens:<28} "
                   f"{cv.folds_better:>2}/{folds}      {versus}".rstrip())
    if canthus_row is not None:
        label, cv, both = canthus_row
        c_sens, _, c_thr = metrics.sensitivity_at_specificity(cv.predictions, both.febrile, chosen.equal_spec_target)
        sens = f"{_f(c_sens)} {round(c_sens * pos):>3}/{pos} ({c_thr:.2f})"
        click.echo(f"{label:{w}} {cv.model.mae_c:7.4f} {_f(cv.model.auc, 4):>7}   {sens:<28} "
                   f"{'':{len(f'{0:>2}/{folds}      ')}}{_folds_below(cv, chosen):>2}/{folds}".rstrip())
        click.echo(f"  (the canthus model: what people without glasses get; its own constant offset has MAE "
                   f"{cv.baseline.mae_c:.4f}, AUC {_f(cv.baseline.auc, 4)})")
    if any(f not in features for f in fda.RESEARCH_FEATURES):
        click.echo("† tried only, not a model input (face_max: the study's hottest face pixel, which the engine does "
                   "not read yet;")
        click.echo("  forehead_max: the forehead region, read for spectacle wearers only; see station body-model "
                   "compare)")
    click.echo(f"sens at spec: the baseline flags at {metrics.REFERENCE_FEVER_C} °C; each model's threshold is "
               "moved on the pooled held-out")
    click.echo("estimates to the lowest as specific (its ROC curve read at the baseline's false-alarm rate). "
               "With the")
    click.echo(f"threshold chosen on each training fold instead, the chosen model: sens {_f(chosen.trained_sens)}, "
               f"spec {_f(chosen.trained_spec)}.")

    at_thresholds = [("constant offset (baseline)", base), (_label(features, site), chosen.model)]
    if canthus_row is not None:
        at_thresholds.append((_label(features) + " (canthus model)", canthus_row[1].model))
    w = max([28] + [len(label) for label, _ in at_thresholds])
    click.echo("")
    click.echo(f"At the station's thresholds (on estimated body temperature; febrile = oral >= "
               f"{metrics.REFERENCE_FEVER_C} °C), held out:")
    click.echo(f"{'':{w}} {_group(f'elevated {elevated_c:.2f} °C')}{_group(f'fever {fever_c:.2f} °C')}"
               f"{_group(f'at {metrics.REFERENCE_FEVER_C:.2f} °C')}bias °C")
    click.echo(f"{'':{w}} {_group('sens   spec') * 3}".rstrip())
    for label, fig in at_thresholds:
        click.echo(f"{label:{w}} {_rates(fig.sens_elevated, fig.spec_elevated)}{_rates(fig.sens_fever, fig.spec_fever)}"
                   f"{_rates(fig.sens_reference, fig.spec_reference)}{fig.bias_c + 0.0:+.3f}")

    splits = fit.time_split(usable, features, site=site, ridge=ridge, thresholds=thresholds)
    if splits:
        click.echo("")
        click.echo("Across time (fitted on the subjects before the median date, tested after it, and back): MAE °C")
        for s in splits:
            click.echo(f"  {s.direction:14} ({s.n_train:>4} -> {s.n_test:>4} subjects)   baseline "
                       f"{s.baseline.mae_c:.4f} (bias {s.baseline.bias_c:+.3f})   model {s.model.mae_c:.4f} "
                       f"(bias {s.model.bias_c:+.3f})")

    command = ["station", "body-model", "fit", str(csv_path), "--out", str(out)]
    defaults = {"site": "canthus", "features_text": "ambient", "ridge": 0.0, "folds": fit.CV_FOLDS,
                "seed": fit.CV_SEED, "name": default_name, "model_version": 1}
    given = {"site": site, "features_text": features_text, "ridge": ridge, "folds": folds, "seed": seed,
             "name": name, "model_version": model_version}
    for key, value in given.items():
        if value != defaults[key]:
            command += [f"--{key.replace('_text', '').replace('_', '-')}", str(value)]
    provenance = {"data_set": data_set, "citation": citation, "licence": licence,
                  "command": shlex.join(command), "thresholds_c": {"elevated": elevated_c, "fever": fever_c}}
    model = fit.fit(data, features, site=site, ridge=ridge, name=name, version=model_version, thresholds=thresholds,
                    folds=folds, seed=seed, provenance=provenance)
    spread = ", ".join(f"{f} {chosen.coefficient_mean[f]:.3f} ± {chosen.coefficient_sd[f]:.3f}"
                       for f in chosen.coefficient_mean)
    click.echo("")
    click.echo(f"coefficients over the folds: {spread}")
    click.echo(f"model {model.id}: {model.formula()}")
    _write(out, model.to_json())
    click.echo(f"wrote {out}")


@body_model.command("evaluate", context_settings=CONTEXT)
@click.argument("csv_path", metavar="CSV", type=click.Path(path_type=Path))
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The model to check, for either site (default: the shipped canthus model, models/body-model.json).")
@click.option("--no-ambient", is_flag=True, help="As a station without a room thermometer: ambient at the "
              "training mean.")
def evaluate_command(csv_path: Path, model_path: Path | None, no_ambient: bool) -> None:
    """Check a model on CSV: MAE, ROC AUC, sensitivity and specificity at the station's thresholds.

    CSV is in the layout of the FDA facial/oral study; the reference is aveOralM, febrile means oral
    >= 37.5 °C. The model is fed its own site (canthus, or forehead_mouth for a glasses model), on the
    subjects that have it. An impossible value (not a number, or e.g. a humidity of 3021 %) in a column
    the model does not read is read as missing; one in a column it reads (aveOralM, its site, T_atm)
    leaves that subject out. Both are printed as notes, naming the subjects. The thresholds (elevated_c,
    fever_c) and the constant offset shown for comparison are the station's own settings; that offset is
    a canthus offset, so it is always applied to the canthus. Last, the cross-validated figures on CSV
    (10 folds by subject) of the model's inputs beside those of the model shipped before the comparison,
    the selection rule's choice, and the candidates with the lowest MAE and the highest AUC, each with
    why the rule did not choose it (see station body-model compare).

    \b
    Examples:
      station body-model evaluate ../shared/data/fda-facial-oral/FLIR_groups1and2.csv
      station body-model evaluate people.csv --model site.json --no-ambient
      station body-model evaluate people.csv --model models/body-model-glasses.json
    """
    # Any site's model may be checked here: the site it reads is taken from the file, not assumed.
    model = bm.load_model() if model_path is None else bm.load_model(model_path, site=None)
    elevated_c, fever_c, offset_c = _station_thresholds()
    thresholds = (elevated_c, fever_c)
    # The model's own features decide which bad cells cost a subject and which are read as missing; without
    # ambient the model never sees T_atm, so a typo there must not cost anyone either.
    reads = tuple(f for f in model.features if not (no_ambient and f == "ambient"))
    data = _describe(fda.read_fda_csv(csv_path, reads), model.site)
    click.echo(f"model {model.id}: {model.formula()}")
    click.echo(f"site: {model.site}, {_SITE_READS[model.site]}")
    if model.provenance.get("data_sha256") == data.sha256:
        click.echo("note: the model was fitted on this very file, so these figures are in-sample; its "
                   "cross-validated ones")
        click.echo("      are in the model file (provenance.cross_validation)")
    if no_ambient:
        body = model.predict(data.column(model.site), None, data.distance)
        fig = metrics.figures(body, data.oral, thresholds)
    else:
        fig = fit.evaluate(model, data, thresholds)
    offset = fit.offset_figures(offset_c, data, thresholds)
    # The station's offset is a canthus offset: for another site's model it is shown on the canthus, as the
    # figures of people without glasses, not applied to a reading it was never meant for.
    offset_label = (f"constant offset {offset_c:.2f} °C" if model.site == "canthus"
                    else f"canthus + {offset_c:.2f} °C (no glasses)")
    click.echo("")
    click.echo(f"{'':30} {'MAE °C':>7} {'bias °C':>8} {'AUC':>7}   {_group(f'elevated {elevated_c:.2f} °C')}"
               f"{_group(f'fever {fever_c:.2f} °C')}".rstrip())
    click.echo(f"{'':30} {'':>7} {'':>8} {'':>7}   {_group('sens   spec') * 2}".rstrip())
    for label, f in ((f"model{' (no ambient)' if no_ambient else ''}", fig), (offset_label, offset)):
        click.echo(f"{label:30} {f.mae_c:7.4f} {f.bias_c:+8.3f} {_f(f.auc, 4):>7}   "
                   f"{_rates(f.sens_elevated, f.spec_elevated)}{_rates(f.sens_fever, f.spec_fever)}".rstrip())
    _print_cross_validated(csv_path, model, thresholds)


#: The model shipped before the comparison of issue 14, named in ``evaluate``'s cross-validated rows.
PREVIOUS_MODEL_ID = "fda-flir-linear-v1@20bbb1232cdc"


def _print_cross_validated(csv_path: Path, model: bm.BodyModel, thresholds: tuple[float, float]) -> None:
    """``evaluate``'s last part: the model against the shipped one and the rule's choice, cross-validated on CSV.

    The figures above are the model as it is (in-sample when it was fitted on CSV); these are what its
    inputs give on new people of CSV (10 folds by subject, seed 7), beside the inputs of the model shipped
    before the comparison, the inputs the selection rule chooses on CSV, and the candidate with the lowest
    CV MAE, with why the rule turned it down. Rows with the same inputs are one row with every label. A
    file too small or too odd for the comparison gets one line saying why, never a failed evaluate.
    """
    candidates = selection.COMPARE_CANDIDATES
    if model.features not in candidates:
        candidates = (*candidates, model.features)
    try:
        data = fda.read_fda_csv(csv_path, tuple(dict.fromkeys(_compare_inputs(candidates) + model.features)))
        comparison = selection.compare(data, candidates, thresholds=thresholds)
    except StationError as exc:
        click.echo("")
        click.echo(f"not cross-validated: {exc}")
        return
    choice = comparison.choice
    readable = [r for r in comparison.rows if r.readable]
    lowest = min(readable, key=lambda r: r.cv.mae_c)
    ranks_best = max(readable, key=lambda r: r.cv.auc)
    labels: dict[tuple[str, ...], list[str]] = {}
    for inputs, label in ((model.features, "this model"), (selection.PREVIOUS_INPUTS, f"shipped, {PREVIOUS_MODEL_ID}"),
                          (choice.chosen, "chosen by the rule"), (lowest.inputs, "lowest CV MAE"),
                          (ranks_best.inputs, "highest CV AUC")):
        labels.setdefault(inputs, []).append(label)
    by_inputs = {r.inputs: r for r in comparison.rows}
    rows = [(" + ".join(inputs), "; ".join(names), by_inputs[inputs]) for inputs, names in labels.items()
            if inputs in by_inputs]
    w = max([34] + [len(name) for name, _, _ in rows])
    click.echo("")
    click.echo(f"Cross-validated on this file ({comparison.folds} folds by subject, seed {comparison.seed}, "
               f"{comparison.n} subjects; every candidate: station body-model compare):")
    head = _cv_head(w, thresholds, comparison.equal_spec_target)
    click.echo(head[0] + f"{'worst':>7}{'worst':>8}")
    click.echo(head[1] + f"{'round':>7}{'period':>8}")
    for name, what, r in rows:
        sens = _sens(r.equal_spec_sens, comparison.positives, r.equal_spec_threshold_c)
        click.echo(f"{_cv_line(name, w, r.cv, sens)}{_f(r.worst_round, 4):>7}{_f(r.worst_period, 4):>8}")
        why = choice.dropped.get(r.inputs)
        click.echo(f"  {what}" + (f"; not chosen: {why}" if why and r.inputs != choice.chosen else ""))


# ============================================================================================== compare
def _compare_inputs(candidates: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    """What a comparison reads strictly (see :func:`station.fitting.fda.read_fda_csv`): the skin readings and
    the shipped model's inputs.

    An impossible value in one of them leaves its subject out of every row, so that all rows are about
    the same people: a skin reading cannot sit at a mean, and the shipped model is the yardstick, judged
    on the people it was documented on. One in a column only some candidates try (distance, humidity) is
    read as missing, as ``fit`` does for the candidates it only tries: the FLIR file's one Distance of
    79 m would otherwise take its subject out of every row, the shipped model's included.
    """
    used = {f for inputs in candidates for f in inputs} | set(selection.PREVIOUS_INPUTS)
    return tuple(f for f in (*bm.SITES, *fda.CANDIDATE_FEATURES)
                 if f in used and (f in fda.SKIN_INPUTS or f in selection.PREVIOUS_INPUTS))


def _mark(inputs: tuple[str, ...], choice: selection.Choice | None = None) -> str:
    """A row's label: its inputs, then (shipped), (chosen), or † when the station cannot read them."""
    marks = []
    if inputs == selection.PREVIOUS_INPUTS:
        marks.append("shipped")
    if choice is not None and inputs == choice.chosen:
        marks.append("chosen")
    label = " + ".join(inputs) + (f"  ({', '.join(marks)})" if marks else "")
    return label + (" †" if not all(f in selection.STATION_READABLE for f in inputs) else "")


def _cv_line(label: str, w: int, fig: metrics.Figures, sens: str) -> str:
    """One row of figures; the sensitivity at equal specificity padded, so that columns may follow it."""
    return (f"{label:{w}} {fig.mae_c:7.4f} {round(fig.bias_c, 3) + 0.0:+8.3f} {_f(fig.auc, 4):>7}   "
            f"{_rates(fig.sens_elevated, fig.spec_elevated)}{_rates(fig.sens_fever, fig.spec_fever)}{sens:<22}")


def _sens(sens: float, positives: int, threshold_c: float) -> str:
    return f"{_f(sens)} {round(sens * positives):>3}/{positives} ({threshold_c:.2f})"


def _cv_head(w: int, thresholds: tuple[float, float], target: float) -> list[str]:
    elevated_c, fever_c = thresholds
    return [f"{'':{w}} {'MAE °C':>7} {'bias °C':>8} {'AUC':>7}   {_group(f'elevated {elevated_c:.2f} °C')}"
            f"{_group(f'fever {fever_c:.2f} °C')}{f'sens at spec {_f(target)}':<22}",
            f"{'':{w}} {'':>7} {'':>8} {'':>7}   {_group('sens   spec') * 2}{'(threshold °C)':<22}"]


def _print_comparison(comparison: selection.Comparison, data: fda.FdaData, csv_name: str) -> None:
    """The three parts of ``compare``'s report: CV figures, robustness, and the rule applied."""
    c = comparison
    choice = c.choice
    rows = c.rows
    w = max([34] + [len(_mark(r.inputs, choice)) for r in rows])
    click.echo("")
    left = f" ({c.n_left_out} without every compared reading left out)" if c.n_left_out else ""
    click.echo(f"{c.folds}-fold cross-validation by subject (seed {c.seed}) on the same {c.n} subjects{left}, "
               f"{c.positives} febrile;")
    click.echo("every fold's model is plain least squares fitted without its held-out subjects; figures on the pooled "
               "held-out estimates")
    for line in _cv_head(w, c.thresholds, c.equal_spec_target):
        click.echo(line.rstrip())
    click.echo(_cv_line("constant offset (baseline)", w, c.baseline,
                        _sens(c.baseline.sens_reference, c.positives, metrics.REFERENCE_FEVER_C)).rstrip())
    for r in rows:
        click.echo(_cv_line(_mark(r.inputs, choice), w, r.cv, _sens(r.equal_spec_sens, c.positives,
                                                                     r.equal_spec_threshold_c)).rstrip())
    for inputs, why in c.skipped:
        click.echo(f"{_mark(inputs):{w}} not tried: {why}")
    click.echo("baseline: canthus + the training folds' mean offset. sens at spec: each model's threshold moved to be")
    click.echo(f"as specific as the baseline at {metrics.REFERENCE_FEVER_C} °C. † the station cannot read it: shown, "
               "never chosen.")

    click.echo("")
    click.echo("Robustness, MAE °C. Rounds: the same fold models fed one round's readings instead of the mean of the "
               "rounds")
    click.echo("(the station reads a person once). Periods: fitted on the other collection periods, tested on the one "
               "left out.")
    periods = [f"P{i + 1}" for i in range(len(c.periods))]
    head = "".join(f"{f'round {k}':>8}" for k in range(1, 5)) + f"{'worst':>7}{'spread':>7}  "
    head += "".join(f"{p:>7}" for p in periods) + (f"{'worst':>7}{'spread':>7}" if periods else "")
    click.echo(f"{'':{w}} {head}")
    click.echo(f"{'subjects':{w}} " + "".join(f"{n:>8}" for n in c.round_n) + f"{'':14}  "
               + "".join(f"{n:>7}" for _, n in c.periods))
    for r in rows:
        line = "".join(f"{_f(x, 4):>8}" for x in r.round_mae) + f"{_f(r.worst_round, 4):>7}{_f(r.round_spread, 4):>7}  "
        if periods:
            line += "".join(f"{_f(x, 4):>7}" for x in r.period_mae) + f"{_f(r.worst_period, 4):>7}"
            line += f"{_f(r.period_spread, 4):>7}"
        click.echo(f"{_mark(r.inputs, choice):{w}} {line}")
    if periods:
        click.echo("periods: " + ", ".join(f"{p} {label}" for p, (label, _) in zip(periods, c.periods, strict=True))
                   + f" (a gap of more than {selection.PERIOD_GAP_DAYS} days between measuring days starts a period)")
    else:
        click.echo("periods: none (the file's dates do not split), so the check across time is not applied")

    click.echo("")
    click.echo("Selection rule (set, and amended once, before this table was read: see models/README.md):")
    for line in _wrap(selection.SELECTION_RULE, 110):
        click.echo(f"  {line}")
    shipped = c.row(selection.PREVIOUS_INPUTS)
    best_auc = max(r.cv.auc for r in rows if r.readable)
    gates = [f"AUC >= {choice.auc_gate:.4f} (best {best_auc:.4f} - {selection.RULE_AUC_MARGIN})"]
    if math.isfinite(choice.period_gate):
        gates.append(f"worst period <= {choice.period_gate:.4f} (shipped {shipped.worst_period:.4f} + "
                     f"{selection.RULE_PERIOD_MARGIN_C:.3f})")
    if math.isfinite(choice.round_gate):
        gates.append(f"worst round <= {choice.round_gate:.4f} (shipped {shipped.worst_round:.4f} + "
                     f"{selection.RULE_ROUND_MARGIN_C:.3f})")
    click.echo("  gates: " + "; ".join(gates))
    for r in rows:
        if r.inputs in choice.dropped:
            click.echo(f"  {' + '.join(r.inputs):{w}} {choice.dropped[r.inputs]}")
    chosen = c.chosen
    what = ("the shipped model stays" if chosen.inputs == selection.PREVIOUS_INPUTS
            else "a change from the shipped model")
    if not choice.tied:
        what = "no candidate passes every gate: the shipped model stays"
    click.echo(f"chosen: {' + '.join(chosen.inputs)} ({what}): CV MAE {chosen.cv.mae_c:.4f} °C, AUC "
               f"{_f(chosen.cv.auc, 4)}, worst round {_f(chosen.worst_round, 4)}, worst period "
               f"{_f(chosen.worst_period, 4)} on {csv_name}")


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


@body_model.command("compare", context_settings=CONTEXT)
@click.argument("csv_path", metavar="CSV", type=click.Path(path_type=Path))
@click.option("--folds", default=fit.CV_FOLDS, show_default=True, type=click.IntRange(2, 100))
@click.option("--seed", default=fit.CV_SEED, show_default=True, type=int, help="Which subjects go in which fold.")
@click.option("--test-on", "test_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Also fit each candidate on all of CSV and test it on FILE (e.g. the study's other camera); a "
                   "check after the choice, never part of it.")
def compare_command(csv_path: Path, folds: int, seed: int, test_path: Path | None) -> None:
    """Compare the candidate inputs by cross-validation by subject, check their robustness, choose by the rule.

    CSV is in the layout of the FDA facial/oral study. The candidates (station.fitting.selection.COMPARE_CANDIDATES)
    are a skin reading the station can take (canthus; face_max, the hottest pixel of the face, T_Max;
    forehead_max, the forehead region's hottest pixel, T_FH_Max; forehead_mouth) with or without the room
    temperature (ambient) and the distance. All are judged on the same people and folds. Printed: the
    cross-validated MAE, bias, ROC AUC (oral >= 37.5 °C), sensitivity and specificity at the station's
    thresholds and at equal specificity; then the MAE on each round's readings alone and with each
    collection period left out; then the selection rule applied, gate by gate, and the choice.

    \b
    Examples:
      station body-model compare ../shared/data/fda-facial-oral/FLIR_groups1and2.csv
      station body-model compare ../shared/data/fda-facial-oral/FLIR_groups1and2.csv --test-on ICI_groups1and2.csv
    """
    elevated_c, fever_c, _ = _station_thresholds()
    thresholds = (elevated_c, fever_c)
    candidates = selection.COMPARE_CANDIDATES
    data = fda.read_fda_csv(csv_path, _compare_inputs(candidates))
    # Both files are read, and the check on the second computed, before anything is printed: a fault in
    # either is one line, not a report cut short.
    other = None if test_path is None else fda.read_fda_csv(test_path, _compare_inputs(candidates))
    comparison = selection.compare(data, candidates, thresholds=thresholds, folds=folds, seed=seed)
    result = None if other is None else selection.transfer(data, other, candidates, thresholds=thresholds)
    _describe(data)
    _print_comparison(comparison, data, Path(csv_path).name)
    if other is None or result is None or test_path is None:
        return
    w = max([34] + [len(_mark(row.inputs, comparison.choice)) for row in result.rows])
    click.echo("")
    click.echo(f"Fitted on all of {Path(csv_path).name}, tested on {Path(test_path).name}: {result.n} subjects, "
               f"{result.positives} febrile (a check after the choice, not part of it)")
    for note in other.notes:
        click.echo(f"note: {Path(test_path).name}: {note}")
    for line in _cv_head(w, thresholds, result.baseline.spec_reference):
        click.echo(line.rstrip())
    click.echo(_cv_line("constant offset (baseline)", w, result.baseline,
                        _sens(result.baseline.sens_reference, result.positives, metrics.REFERENCE_FEVER_C)).rstrip())
    for row in result.rows:
        label = _mark(row.inputs, comparison.choice)
        if row.figures is None:
            click.echo(f"{label:{w}} not tried: {row.why_not}")
        else:
            click.echo(_cv_line(label, w, row.figures, _sens(row.equal_spec_sens, result.positives,
                                                              row.equal_spec_threshold_c)).rstrip())
