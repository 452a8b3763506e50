"""What every command-line binary checks before doing any work, and how it fails.

Exit status of the commands that use :func:`run`: 0 success, 1 partial
failure (some items failed; the command prints which), 2 bad arguments or
configuration: a one-line ``<command>: error: <reason>`` on stderr, no
traceback, before any long work starts.
"""

import sys

from absl import app
from absl import flags

#: Exit status for bad arguments or configuration.
EXIT_USAGE = 2


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


def fail(command, error):
    """Prints ``<command>: error: <error>`` on one line to stderr and exits with status 2."""
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"{command}: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def run(main, command, argv=None):
    """``absl.app.run(main)`` with the exit codes of this package.

    A flag that does not parse (``--batch_size=abc``, an unknown flag, a
    missing required flag), an ``app.UsageError`` or a ``ValueError`` from
    ``main`` becomes one line ``<command>: error: ...`` and exit status 2;
    ``main``'s return value is the exit status otherwise.

    Example::

        def run():
            cli.run(main, "kc-colorize")
    """

    def parse(args):
        try:
            return flags.FLAGS(args)
        except flags.Error as e:
            fail(command, e)

    def checked_main(args):
        try:
            return main(args)
        except (ValueError, app.UsageError) as e:
            fail(command, e)

    app.run(checked_main, argv=argv, flags_parser=parse)
