"""The interactive poster of a finished study: every result of ``betavae reproduce`` in the browser.

The reproducibility report wished for a poster showing all of the study's results, and judged it too
costly (its ONNX proof of concept showed one model). ``betavae reproduce`` writes it beside the report,
``betavae poster DIR`` rebuilds it from a finished study: a static site whose figures (the claims table,
loss against β_norm, each metric's heatmap over β_norm × latent size, the baselines table) are drawn in
the page from ``study.json`` (:mod:`betavae.study.data`), and whose every grid cell opens the runs
behind it, decoded live in the browser by ONNX Runtime Web. The layout, which ``page/poster.js`` reads::

    index.html  poster.js  poster.css  common.js  common.css   (the last two: shared with the demo page)
    poster.json                 study.json, each run's row with the folder of its model
    ort/                        ONNX Runtime Web (betavae.demo.vendor)
    runs/<part>/<sweep>/<run>/  decoder.onnx, model.json, test_images.png, reconstructions.png
    .betavae.json               the mark (betavae.files): every file above, as written (never served)

Only decoders are shipped (:func:`betavae.poster.export.export_run`): the held-out images' codes and
reconstructions are computed here, so a page fetches one model per run it shows, and only when shown.
"""

from betavae.poster.build import POSTER_DIR, build_poster

__all__ = ["POSTER_DIR", "build_poster"]
