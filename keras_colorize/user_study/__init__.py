"""Real-or-fake user study: the paper's naturalness evaluation as a local web app.

Zayd, Yudistira and Wihandika (Table 3) showed 17 respondents real landscape
photos mixed with colorizations and counted how often each model's output was
judged "real" (Zhang 2016: 44.5 %, Zhang 2017: 56.8 %, proposed: 48.2 %). This
package runs that study on folders of images and reports the same figures.

* `catalog`: scans the real folder and each model's folder; files with the same
  relative path (extension ignored) are one source scene.
* `plan`: the seeded per-respondent order (balanced over sources, one image
  per scene).
* `db`: SQLite storage (WAL, one commit per answer).
* `server`: the standard-library HTTP server and its JSON API.
* `report`: the Table 3 report (Markdown and JSON, Wilson 95 % intervals).

Command line: `python -m keras_colorize.user_study serve|report --help`.
"""

from keras_colorize.user_study.catalog import Catalog, StudyImage, build_catalog, parse_model_arg
from keras_colorize.user_study.plan import make_plan
from keras_colorize.user_study.report import compute_report, render_markdown, write_report, wilson_interval

__all__ = [
    "Catalog",
    "StudyImage",
    "build_catalog",
    "parse_model_arg",
    "make_plan",
    "compute_report",
    "render_markdown",
    "write_report",
    "wilson_interval",
]
