"""What every command-line binary checks before doing any work, and how it fails.

Every ``kc-*`` console script (and its ``python -m`` / ``export/*.py`` form)
runs its ``main`` through :func:`run`. Exit status: 0 success, 1 partial
failure (some items failed; the command prints which), 2 bad arguments or
configuration, including a missing optional extra (:func:`require_extra`): a
one-line ``<command>: error: <reason>`` on stderr, no traceback, before any
long work starts.
"""

import importlib
import os
import re
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


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def flag_label(names, field):
    """How a message names a config field: its flag where ``names`` maps it (``{"alpha": "--smooth_alpha"}``)."""
    return (names or {}).get(field, field)


def require_extra(module, extra, hint=""):
    """Imports ``module`` (e.g. ``"av"``) or raises :class:`MissingExtra` naming the pip extra to install.

    Library code calls it where it needs an optional dependency, so a plain
    ``pip install keras_colorize`` fails with an instruction rather than a bare
    ``ModuleNotFoundError``; :func:`run` turns the error into one line and exit
    status 2, e.g. ``kc-colorize-video: error: needs the [video] extra: pip
    install 'keras_colorize[video]' (No module named 'av')``.

    Args:
      module: dotted module name to import.
      extra: the ``[options.extras_require]`` name in setup.cfg that installs it.
      hint: what it is needed for, or how to do without it (appended to the message).

    Returns:
      The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        hint = f" {hint}" if hint else ""
        raise MissingExtra(f"needs the [{extra}] extra: pip install 'keras_colorize[{extra}]'{hint} ({e})") from e


def fail(command, error):
    """Prints ``<command>: error: <error>`` on one line to stderr and exits with status 2."""
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"{command}: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


_SHORT_HELP = ("-?", "-h", "-help", "--help", "--helpshort")
_FULL_HELP = ("--helpfull", "--helpxml")


def _asked(args, names):
    options = list(args[1:])
    options = options[:options.index("--")] if "--" in options else options
    return any(a in names for a in options)


def print_help(main):
    """``--help``: the command module's docstring and the flags this package defines for it.

    absl's own short help lists the flags of ``__main__``, which for a console
    script is the generated launcher (no flags, no docstring).
    """
    module = sys.modules.get(main.__module__)
    # absl files the flags of ``python -m <module>`` under ``sys.argv[0]`` (the module's path).
    package_dir = os.path.dirname(os.path.abspath(__file__))
    ours = [name for name in flags.FLAGS.flags_by_module_dict()
            if name in ("__main__", sys.argv[0]) or name.split(".")[0] == __name__.split(".")[0]
            or os.path.abspath(name).startswith(package_dir + os.sep)]
    print((getattr(module, "__doc__", None) or "").strip() + "\n")
    print("\n\n".join(flags.FLAGS.module_help(name) for name in sorted(ours)))
    print("\nTry --helpfull to get a list of all flags.")


#: What :func:`run` reports as bad arguments or configuration by default.
USAGE_ERRORS = (ValueError, FileExistsError)


def run(main, command, argv=None, usage_errors=USAGE_ERRORS):
    """``absl.app.run(main)`` with the exit codes of this package.

    A flag that does not parse (``--batch_size=abc``, an unknown flag, a
    missing required flag), an ``app.UsageError``, a :class:`MissingExtra` or
    one of ``usage_errors`` from ``main`` (default: ``ValueError``, and
    ``FileExistsError`` for an output that exists without ``--overwrite``)
    becomes one line ``<command>: error: ...`` and exit status 2; ``main``'s
    return value (None: 0) is the exit status otherwise. Any other exception
    keeps its traceback (exit status 1). ``--help`` prints the command's
    docstring and flags (:func:`print_help`) and exits 0, as ``--helpfull`` does.

    Args:
      main: ``main(argv)``, returning the exit status.
      command: the name in the messages, the console script's (``kc-colorize``).
      argv: the arguments (default ``sys.argv``).
      usage_errors: exception types that mean bad arguments or configuration;
        a command whose library raises ``ValueError`` mid-run for other reasons
        narrows it (``kc-train``: only ``ConfigError``, found before training).

    Example::

        def run():
            cli.run(main, "kc-colorize")
    """

    def parse(args):
        if _asked(args, _SHORT_HELP):
            print_help(main)
            sys.exit(0)
        try:
            return flags.FLAGS(args)
        except flags.Error as e:
            missing = re.findall(r"Flag (--\w+) must have a value other than None", str(e))  # mark_flag_as_required
            fail(command, f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required" if missing else e)
        except SystemExit as e:  # absl's --helpfull prints the help, then exits with status 1
            sys.exit(0 if e.code == 1 and _asked(args, _FULL_HELP) else e.code)

    def checked_main(args):
        try:
            return main(args)
        except (app.UsageError, MissingExtra, *usage_errors) as e:
            fail(command, e)

    app.run(checked_main, argv=argv, flags_parser=parse)
