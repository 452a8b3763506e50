"""Command line of the real-or-fake user study.

    python -m keras_colorize.user_study serve --real=photos/ \\
        --model zhang2016=out/zhang2016 --model proposed=out/proposed \\
        --per_respondent=100 --db=study.sqlite --port=8000 [--seed=0] [--display_size=256] [--host=127.0.0.1] \\
        [--read_timeout=10] [--max_connections=128]
    python -m keras_colorize.user_study report --db=study.sqlite [--out=results/]
    python -m keras_colorize.user_study prepare --photos=photos/landscapes \\
        --model scenes --model zhang2016=runs/scenes_cpu_zhang2016/best.keras --output=study/ [--max_images=100]

`prepare` writes the folders `serve` takes (`study/real/`, `study/<model>/`:
the same photos, colorized by each model; see `keras_colorize.user_study.prepare`)
and prints the `serve` command. Exit status: 0 done, 1 some photos could not be
read (listed; skipped for every source), 2 bad arguments.

`serve` prints the address to open; `report` prints the Markdown table and
writes `<db stem>_report.md` and `<db stem>_report.json` (next to the database
unless `--out` says where). Also installed as `kc-user-study`.

Bad arguments or configuration (a missing or unparsable option, a folder or
database that does not exist) exit with status 2 and one line
`kc-user-study[ <command>]: error: ...`, before any work.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys

from keras_colorize import cli
from keras_colorize.user_study import catalog as catalog_lib
from keras_colorize.user_study import report as report_lib
from keras_colorize.user_study import server as server_lib


def _model_arg(value: str) -> tuple[str, str]:
    try:
        name, path = catalog_lib.parse_model_arg(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name, str(path)


COMMAND = "kc-user-study"


class _Parser(argparse.ArgumentParser):
    """argparse with the package's bad-argument report: one line ``<prog>: error: ...``, exit status 2."""

    def error(self, message):
        cli.fail(self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=COMMAND,
        description="Real-or-fake user study of colorizations (the paper's Table 3).")
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)

    serve = sub.add_parser("serve", help="run the study web page",
                           description="Serve the study: respondents judge real photos and colorizations.")
    serve.add_argument("--real", required=True, metavar="DIR", help="folder of real colour photos")
    serve.add_argument("--model", action="append", type=_model_arg, required=True, metavar="NAME=DIR",
                       help="a model's colorizations, same relative file names as --real (repeat per model)")
    serve.add_argument("--per_respondent", type=int, required=True, metavar="N",
                       help="images per respondent (at most the number of distinct scenes)")
    serve.add_argument("--db", default="study.sqlite", help="SQLite file for answers (reopen to resume)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port; 0 picks a free one")
    serve.add_argument("--seed", type=int, default=0, help="seed of the per-respondent random orders")
    serve.add_argument("--display_size", type=int, default=256,
                       help="longer side in pixels of every image shown (default 256, the paper's resolution)")
    serve.add_argument("--read_timeout", type=float, default=10.0, metavar="SECONDS",
                       help="a connection silent this long mid-request gets 408, an idle one is closed (default 10)")
    serve.add_argument("--max_connections", type=int, default=128, metavar="N",
                       help="connections served at once, one thread each; beyond, 503 with Retry-After (default 128)")

    report = sub.add_parser("report", help="print and write the Table 3 report",
                            description="Per source: judgments, percent judged real with a Wilson 95 %% CI, "
                                        "respondents; and respondents' accuracy on real photos.")
    report.add_argument("--db", required=True, help="the study's SQLite file")
    report.add_argument("--out", default=None, metavar="DIR",
                        help="folder for <db stem>_report.md/.json (default: the database's folder)")

    prepare = sub.add_parser("prepare", help="write the real and colorized folders that serve takes",
                             description="Colorize photos with each model into the folders of a study.")
    prepare.add_argument("--photos", required=True, metavar="DIR", help="folder of real colour photos")
    prepare.add_argument("--model", action="append", required=True, metavar="NAME=SPEC",
                         help="a model: NAME=SPEC (SPEC a bundled name, .keras file or SavedModel folder), or a bundled "
                              "name alone (repeat per model)")
    prepare.add_argument("--output", required=True, metavar="DIR", help="folder for real/ and one folder per model")
    prepare.add_argument("--max_images", type=int, default=0, metavar="N", help="a seeded sample of N photos (0 = all)")
    prepare.add_argument("--seed", type=int, default=0, help="seed of that sample")
    prepare.add_argument("--long_side", type=int, default=512, metavar="PX",
                         help="longer side of the files written; larger photos are shrunk (default 512)")
    prepare.add_argument("--noprogress", dest="progress", action="store_false", help="no progress bar")
    return parser


def _prepare(args) -> int:
    from keras_colorize.user_study import prepare as prepare_lib  # noqa: PLC0415 - imports TensorFlow

    config = prepare_lib.PrepareConfig(
        photos=args.photos, models=tuple(prepare_lib.parse_model_spec(m) for m in args.model), output=args.output,
        max_images=args.max_images, seed=args.seed, long_side=args.long_side)
    summary = prepare_lib.prepare(config, progress=args.progress)
    for relative, reason in summary.failed:
        print(f"  FAILED {relative}: {reason}")
    counts = ", ".join(f"{source} {count}" for source, count in summary.written.items())
    print(f"wrote {counts} ({summary.kept} kept from an earlier run, {len(summary.failed)} failed) "
          f"in {summary.seconds:.1f} s")
    print("sources:", ", ".join(prepare_lib.check_sources(config)))
    print("serve with:\n  " + summary.serve_command(config))
    return 1 if summary.failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.command == "serve":
            config = server_lib.StudyConfig(
                real_dir=args.real, models=tuple(args.model), per_respondent=args.per_respondent,
                db_path=args.db, host=args.host, port=args.port, seed=args.seed, display_size=args.display_size,
                read_timeout_s=args.read_timeout, max_connections=args.max_connections)
            server_lib.serve(config)
        elif args.command == "prepare":
            return _prepare(args)
        else:
            report = report_lib.compute_report(args.db)
            db_path = pathlib.Path(args.db)
            out_dir = args.out if args.out is not None else db_path.parent
            md_path, json_path = report_lib.write_report(report, out_dir, stem=db_path.stem)
            print(report_lib.render_markdown(report))
            print(f"Wrote {md_path} and {json_path}")
    except ValueError as e:
        cli.fail(f"{parser.prog} {args.command}", e)
    return 0


def run() -> None:
    """Console-script entry point (`kc-user-study`)."""
    sys.exit(main())


if __name__ == "__main__":
    run()
