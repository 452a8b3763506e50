"""A local colorization studio in the browser: open a folder, see the colour, click to correct it, save.

* `folder`: the photos folder (only read) and the output folder (the only place written), with checked paths.
* `render`: the model, the photos opened last and their previews (gray, colorized, thumbnails).
* `session`: each photo's edit (colour points, reference photo, saturation), its state, saving
  (the hint sidecar and the full-resolution colorization, with ``kc-colorize``'s code).
* `batch`: "Colorize the rest" in the background.
* `server`: the HTTP API (on the shared layer, :mod:`keras_colorize.webapp`) and the per-run token.
* `static/`: the page (HTML, CSS, JavaScript; nothing loaded from elsewhere).

Command line: ``kc-studio --photos=DIR`` (``python -m keras_colorize.studio --help``).
"""
