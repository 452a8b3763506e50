"""What every command-line binary checks before doing any work."""

from absl import app
from absl import flags


def check_args(argv, required=()):
    """Raises ``app.UsageError`` for stray positional arguments or an empty required flag.

    Args:
      argv: the ``argv`` absl passes to ``main`` (program name first).
      required: names of flags that must be given a non-empty value.
    """
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    for name in required:
        if not flags.FLAGS[name].value:
            raise app.UsageError(f"--{name} is required")
