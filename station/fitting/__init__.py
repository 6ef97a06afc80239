"""Fitting: offline science, never imported per frame. The FDA facial-thermometry reader, subject-grouped
cross-validation, model fitting and comparison, and their figures. May import screen (the runtime model
it fits and evaluates) and the shared modules; nothing that screens imports it.

- :mod:`station.fitting.fda`: the reader of the FDA study's CSV layout and its per-subject data;
- :mod:`station.fitting.metrics`: the figures an estimate is judged on (MAE, ROC AUC, sensitivity, specificity);
- :mod:`station.fitting.fit`: fitting a model, cross-validating it by subject, checking it on a file;
- :mod:`station.fitting.selection`: comparing candidate inputs and choosing by the rule fixed in advance.
"""
