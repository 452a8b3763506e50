"""The study's Table 3: how often each source was judged "real", with 95 % Wilson intervals.

For a model, the share of its colorizations judged real is what the paper's
Table 3 calls "accuracy" (a colorization that fools people scores high); for
the real photos it is the respondents' accuracy on real photos, their
baseline. Intervals are Wilson score intervals over judgments, which treat
judgments as independent; with few respondents, each judging many images,
between-respondent variation makes the true uncertainty larger.

Example:
    report = compute_report("study.sqlite")
    print(render_markdown(report))
    write_report(report, "results/")   # study_report.md, study_report.json
"""

from __future__ import annotations

import datetime
import json
import math
import os
import pathlib
import sqlite3
import statistics

from keras_colorize import fileio

Z_95 = 1.959963984540054  # two-sided 95 % normal quantile
# Table 3 of the paper (17 respondents): percent of each model's colorizations judged real.
PAPER_TABLE3 = {"Zhang et al. 2016": 44.5, "Zhang et al. 2017": 56.8, "Proposed (paper)": 48.2}


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion (Wilson 1927); None when `n` is 0."""
    if n == 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must be between 0 and n={n}")
    p = successes / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


def _connect_read_only(db_path: str | os.PathLike) -> sqlite3.Connection:
    path = pathlib.Path(db_path)
    if not path.is_file():
        raise ValueError(f"--db: {str(db_path)!r} does not exist")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM answers LIMIT 1")
    except sqlite3.DatabaseError as e:
        raise ValueError(f"--db: {str(db_path)!r} is not a user-study database ({e})") from e
    return conn


def _percent(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 2)


def compute_report(db_path: str | os.PathLike) -> dict:
    """Reads the study database (read-only; safe while the server runs) into a JSON-able dict.

    Returns:
      `{"study": {...}, "sources": [per-source rows, real first], "real_photo_accuracy": {...}}`;
      percentages are in percent, intervals `[low, high]` in percent.
    """
    conn = _connect_read_only(db_path)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='sources'").fetchone()
        order = json.loads(row[0]) if row else []
        answers = conn.execute(
            "SELECT respondent_id, source, answer, response_ms FROM answers ORDER BY respondent_id, position"
        ).fetchall()
        respondents = conn.execute(
            "SELECT r.respondent_id, r.total, COUNT(a.position) FROM respondents r "
            "LEFT JOIN answers a USING (respondent_id) GROUP BY r.respondent_id").fetchall()
    finally:
        conn.close()

    sources = order + sorted({a[1] for a in answers} - set(order))
    rows = []
    for source in sources:
        mine = [a for a in answers if a[1] == source]
        judged_real = sum(1 for a in mine if a[2] == "real")
        interval = wilson_interval(judged_real, len(mine))
        rows.append({
            "source": source,
            "kind": "real photos" if source == "real" else "colorizations",
            "judgments": len(mine),
            "judged_real": judged_real,
            "percent_real": _percent(judged_real / len(mine)) if mine else None,
            "ci95_percent": [_percent(x) for x in interval] if interval else None,
            "respondents": len({a[0] for a in mine}),
            "median_response_ms": round(statistics.median(a[3] for a in mine)) if mine else None,
        })

    per_respondent = {}
    for respondent_id, source, answer, _ in answers:
        if source == "real":
            hits, n = per_respondent.get(respondent_id, (0, 0))
            per_respondent[respondent_id] = (hits + (answer == "real"), n + 1)
    shares = [hits / n for hits, n in per_respondent.values()]
    real_row = next((r for r in rows if r["source"] == "real"), None)
    real_accuracy = {
        "pooled_percent": real_row["percent_real"] if real_row else None,
        "ci95_percent": real_row["ci95_percent"] if real_row else None,
        "respondents": len(shares),
        "mean_of_respondents_percent": _percent(statistics.fmean(shares)) if shares else None,
        "min_percent": _percent(min(shares)) if shares else None,
        "max_percent": _percent(max(shares)) if shares else None,
    }
    return {
        "study": {
            "db": str(db_path),
            "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "respondents_started": len(respondents),
            "respondents_completed": sum(1 for _, total, answered in respondents if answered >= total),
            "respondents_answering": len({a[0] for a in answers}),
            "judgments": len(answers),
        },
        "sources": rows,
        "real_photo_accuracy": real_accuracy,
        "paper_table3_percent_real": PAPER_TABLE3,
    }


def _fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f} %"


def render_markdown(report: dict) -> str:
    """The report as a Markdown page (a table like the paper's Table 3, plus the real-photo baseline)."""
    study = report["study"]
    lines = [
        "# User study: real or fake",
        "",
        f"Database `{study['db']}`, {study['judgments']} judgments by {study['respondents_answering']} respondents "
        f"({study['respondents_started']} started, {study['respondents_completed']} completed).",
        "",
        "| source | judgments | respondents | judged real | 95 % CI (Wilson) | median response |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for row in report["sources"]:
        ci = "n/a" if row["ci95_percent"] is None else f"{row['ci95_percent'][0]:.1f}-{row['ci95_percent'][1]:.1f} %"
        ms = "n/a" if row["median_response_ms"] is None else f"{row['median_response_ms'] / 1000:.1f} s"
        name = "real (photos)" if row["source"] == "real" else row["source"]
        lines.append(f"| {name} | {row['judgments']} | {row['respondents']} | {_fmt_pct(row['percent_real'])} "
                     f"| {ci} | {ms} |")
    acc = report["real_photo_accuracy"]
    lines += [
        "",
        f"Respondents' accuracy on real photos (share judged real): {_fmt_pct(acc['pooled_percent'])} pooled"
        + (f"; per respondent mean {_fmt_pct(acc['mean_of_respondents_percent'])} "
           f"(min {_fmt_pct(acc['min_percent'])}, max {_fmt_pct(acc['max_percent'])}, "
           f"{acc['respondents']} respondents)." if acc["respondents"] else "."),
        "",
        "For a model, \"judged real\" is the paper's Table 3 \"accuracy\": higher means more natural "
        "(paper, 17 respondents: " + ", ".join(f"{k} {v:.1f} %" for k, v in PAPER_TABLE3.items()) + "). "
        "Wilson intervals treat judgments as independent; between-respondent variation widens the true "
        "uncertainty.",
        "",
    ]
    return "\n".join(lines)


def write_report(report: dict, out_dir: str | os.PathLike, stem: str = "study") -> tuple[pathlib.Path, pathlib.Path]:
    """Writes `<stem>_report.md` and `<stem>_report.json` into `out_dir` (created); returns both paths."""
    out = pathlib.Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {str(out_dir)!r} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out / f"{stem}_report.md", out / f"{stem}_report.json"
    fileio.atomic_write_text(md_path, render_markdown(report))
    fileio.atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    return md_path, json_path
