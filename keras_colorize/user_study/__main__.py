"""Command line of the real-or-fake user study.

    python -m keras_colorize.user_study serve --real=photos/ \\
        --model zhang2016=out/zhang2016 --model proposed=out/proposed \\
        --per_respondent=100 --db=study.sqlite --port=8000 [--seed=0] [--display_size=256] [--host=127.0.0.1] \\
        [--read_timeout=10] [--max_connections=128]
    python -m keras_colorize.user_study report --db=study.sqlite [--out=results/]

`serve` prints the address to open; `report` prints the Markdown table and
writes `<db stem>_report.md` and `<db stem>_report.json` (next to the database
unless `--out` says where). Also installed as `kc-user-study`.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys

from keras_colorize.user_study import catalog as catalog_lib
from keras_colorize.user_study import report as report_lib
from keras_colorize.user_study import server as server_lib


def _model_arg(value: str) -> tuple[str, str]:
    try:
        name, path = catalog_lib.parse_model_arg(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name, str(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_colorize.user_study",
        description="Real-or-fake user study of colorizations (the paper's Table 3).")
    sub = parser.add_subparsers(dest="command", required=True)

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
    return parser


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
        else:
            report = report_lib.compute_report(args.db)
            db_path = pathlib.Path(args.db)
            out_dir = args.out if args.out is not None else db_path.parent
            md_path, json_path = report_lib.write_report(report, out_dir, stem=db_path.stem)
            print(report_lib.render_markdown(report))
            print(f"Wrote {md_path} and {json_path}")
    except ValueError as e:
        parser.exit(2, f"{parser.prog} {args.command}: error: {e}\n")
    return 0


def run() -> None:
    """Console-script entry point (`kc-user-study`)."""
    sys.exit(main())


if __name__ == "__main__":
    run()
