"""The β-VAE reproduction study (``betavae reproduce``) on top of the sweep engine (:mod:`betavae.studies`).

:mod:`~betavae.study.design` holds its parts, scales and constants; :mod:`~betavae.study.runner`
trains and measures; :mod:`~betavae.study.stats` is the verdict rule; :mod:`~betavae.study.claims`
reduces each claim to per-seed effects; :mod:`~betavae.study.trained` marks the runs that learned;
:mod:`~betavae.study.study_report` judges and lays out the report that :mod:`~betavae.study.report`
renders. The sweep engine never imports this package.
"""
