"""Studies over many runs: grids of training settings (:mod:`~betavae.studies.sweep`) and their results.

A sweep is a folder of ordinary run folders plus one SQLite file saying what each grid
point's run has reached, so every command that takes a run folder works on its runs.
"""
