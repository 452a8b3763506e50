r"""A local colorization studio in the browser: ``kc-studio`` / ``python -m keras_colorize.studio``.

    kc-studio --photos=scans/ [--output=scans_colorized/] [--model=scenes_guided] [--port=8765] [--open] [--host=127.0.0.1]

Prints ``Open http://127.0.0.1:PORT/?token=...``: the page lists the photos of
``--photos`` (recursive, the image kinds ``kc-colorize`` reads) with their
state; opening one shows it colorized, with a before/after slider and zoom.
Click the photo to add a colour point (the picker starts at the colour the
model chose there), drag a point to move it, Delete or right-click removes
it; drop a colour photo on the page as the reference palette; a saturation
control; undo and redo. Save writes the full-resolution colorization into
``--output`` (default ``<photos>_colorized``; never inside ``--photos``) and
the hints as ``<photo>.hints.json`` beside it, so the same file comes out of
``kc-colorize --input=<photo> --hints=<output>/<photo>.hints.json``, and a
folder corrected in the studio re-renders from the command line with
``kc-colorize --input=<photos> --output=<elsewhere> --hints_dir=<output>``.
Reopening the studio on the folder restores the saved hints. "Colorize the
rest" renders every unsaved photo with its hints (or none), with progress on
the page; it goes on when the page is closed. Works offline: every script
and style ships in the package.

The server binds 127.0.0.1 (``--host`` elsewhere prints a warning), answers
only requests addressed to this machine, and every request that reads or
writes the user's files carries the token of the printed address. ``--port=0`` picks a free port; ``--open`` opens the page
in the default browser.

Exit status: 0 after Ctrl+C; 2 bad arguments or configuration (a missing
folder, an output folder inside the photos folder, a model that is missing
or not a colorizer, a port in use), printed as one line ``kc-studio: error: ...``.
"""

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags

from keras_colorize import cli
from keras_colorize import pretrained

FLAGS = flags.FLAGS
flags.DEFINE_string("photos", None, "Folder of photos to colorize (searched recursively; only read).")
flags.DEFINE_string("output", None, "Folder for colorizations and hint sidecars (default: <photos>_colorized).")
flags.DEFINE_string("model", pretrained.GUIDED,
                    f"Model: {pretrained.MODEL_HELP} (.keras file or SavedModel folder). Colour points and a "
                    "reference photo need a model with hint inputs.")
flags.DEFINE_string("host", "127.0.0.1", "Address to bind (default: this machine only; others print a warning).")
flags.DEFINE_integer("port", 8765, "TCP port; 0 picks a free one.")
flags.DEFINE_bool("open", False, "Open the page in the default browser.")
flags.DEFINE_integer("preview_size", 1600, "Longer side in pixels of the photo the page shows.")


def main(argv):
    cli.check_args(argv, required=("photos",))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    from keras_colorize.studio import server as server_lib  # noqa: PLC0415 - TensorFlow once the flags are parsed
    config = server_lib.StudioConfig(photos=FLAGS.photos, output=FLAGS.output, model=FLAGS.model, host=FLAGS.host,
                                     port=FLAGS.port, preview_size=FLAGS.preview_size, open_browser=FLAGS.open)
    server_lib.serve(config)  # ValueError: cli.run exits 2
    return 0


def run():
    """Console-script entry point (``kc-studio``)."""
    cli.run(main, "kc-studio")


if __name__ == "__main__":
    run()
