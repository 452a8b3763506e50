"""The documentation against the tree: the layout table, links, named commands, and the results page.

* docs/layout.md ("Where things are") names files that exist, and every package module is in it; the modules it
  maps import each other without a circle.
* The README stays short and keeps the test command where .ci/run reads it.
* Every relative link in README.md, BUILD_NOTES.md and docs/*.md resolves (file and #anchor).
* Every command the docs name exists: `python -m keras_colorize...` modules, `kc-*` console scripts,
  script and flagfile paths.
* docs/results.md holds the committed result files' figures (benchmarks/results/*.json, the TFLite report
  export/report_paper_untrained.json) as they are in those files.
* Headline figures of docs/results.md are not copied back into the README, BUILD_NOTES or the flagfiles.
"""

import ast
import configparser
import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", ROOT / "BUILD_NOTES.md", *DOCS]
RESULTS = ROOT / "docs" / "results.md"


def _read(path):
    return path.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------
# The layout table
# ---------------------------------------------------------------------------


def _layout():
    return _read(ROOT / "docs" / "layout.md")


def test_every_path_in_the_layout_table_exists():
    paths = re.findall(r"`((?:keras_colorize|experiments|benchmarks|export)/[^`]*)`", _layout())
    assert len(paths) > 40
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"docs/layout.md names files that do not exist: {missing}"


def test_every_package_module_is_in_the_layout_table():
    section = _layout()
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "keras_colorize").rglob("*.py")
                     if p.name != "__init__.py" and "__pycache__" not in p.parts)
    absent = [m for m in modules if f"`{m}`" not in section]
    assert not absent, f"modules missing from docs/layout.md: {absent}"


def _import_graph():
    """``{module: {package modules it imports}}``, imports inside functions included (they are edges too)."""
    modules = {}
    for path in (ROOT / "keras_colorize").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(_read(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_colorize"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    edges.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name.startswith("keras_colorize"))
        graph[name] = {edge for edge in edges if edge in modules and edge != name}
    return graph


def _circles(graph):
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_circle_finder_finds_a_planted_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_package_modules_import_each_other_without_a_circle():
    graph = _import_graph()
    assert len(graph) > 80 and graph["keras_colorize.export.litert_runner"]  # the graph was read
    assert not _circles(graph), f"import circles: {_circles(graph)}"


# ---------------------------------------------------------------------------
# The README
# ---------------------------------------------------------------------------


def test_readme_is_short_and_keeps_the_test_command_where_ci_reads_it():
    lines = _read(ROOT / "README.md").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; reference material belongs in docs/"
    marker = lines.index("<!-- test-command -->")
    assert lines[marker + 1] == "```bash"
    assert "pytest" in lines[marker + 2] and "pip install -e '.[test]'" in lines[marker + 2]
    assert "<!-- guided-quickstart -->" in lines
    assert "python -m keras_colorize.train --flagfile=experiments/p3.flags" in lines


# ---------------------------------------------------------------------------
# Links
# ---------------------------------------------------------------------------


def _slug(heading):
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[`*_]|\\", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path):
    text = re.sub(r"```.*?```", "", _read(path), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def _links(path):
    text = re.sub(r"```.*?```", "", _read(path), flags=re.S)
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    broken = []
    for link in _links(page):
        if re.match(r"[a-z]+://|mailto:", link):
            continue
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(link)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(link)
    assert not broken, f"{page.name}: links that do not resolve: {broken}"


# ---------------------------------------------------------------------------
# Commands named in the docs
# ---------------------------------------------------------------------------


def _console_scripts():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    entries = parser["options.entry_points"]["console_scripts"]
    return {line.split("=")[0].strip() for line in entries.strip().splitlines() if "=" in line}


def test_readme_commands_table_matches_the_console_scripts():
    readme = _read(ROOT / "README.md")
    table = readme[readme.index("## Commands"):]
    table = table[:table.index("\n## ", 1)]
    listed = set(re.findall(r"^\| `(kc-[a-z0-9-]+)` \|", table, flags=re.M))
    assert listed == _console_scripts()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_commands_named_in_the_docs_exist(page):
    text = _read(page)
    missing = []
    for module in set(re.findall(r"python -m (keras_colorize(?:\.\w+)*)", text)):
        base = ROOT.joinpath(*module.split("."))
        if not (base.with_suffix(".py").exists() or (base / "__main__.py").exists()):
            missing.append(module)
    scripts = _console_scripts()
    for command in set(re.findall(r"(?<![\w-])(kc-[a-z0-9]+(?:-[a-z0-9]+)*)", text)):
        if command not in scripts:
            missing.append(command)
    for path in set(re.findall(r"(?<![\w./-])((?:experiments|export|benchmarks)/[\w./-]+\.(?:flags|py|txt|json))", text)):
        if not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"{page.name} names commands or files that do not exist: {sorted(missing)}"


def test_flagfile_headers_link_to_the_results_page():
    """Runs measured here keep their figures in docs/results.md; their runbooks point there."""
    for path in sorted((ROOT / "experiments").glob("scenes_cpu*.flags")):
        header = _read(path).split("\n--")[0]
        assert "docs/results.md" in header, path.name
        assert f"row {path.stem}" in header, path.name
        assert f"`{path.stem}`" in _read(RESULTS), f"{path.stem} has no row in docs/results.md"


# ---------------------------------------------------------------------------
# The results page against the committed result files
# ---------------------------------------------------------------------------


def _results_section(source):
    """The text of docs/results.md from the paragraph "From `source` ..." to the next heading."""
    text = _read(RESULTS)
    start = text.index(f"From `{source}`")
    end = text.find("\n#", start)
    return text[start:end if end >= 0 else len(text)]


def _table_rows(section):
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def _committed(pattern):
    return sorted(ROOT.glob(pattern))


def test_every_committed_result_file_is_on_the_results_page():
    text = _read(RESULTS)
    files = _committed("benchmarks/results/*.json") + _committed("export/report*.json")
    assert files
    absent = [f.relative_to(ROOT).as_posix() for f in files if f"`{f.relative_to(ROOT).as_posix()}`" not in text]
    assert not absent, f"result files without their figures in docs/results.md: {absent}"


@pytest.mark.parametrize("path", _committed("benchmarks/results/*.json"), ids=lambda p: p.name)
def test_benchmark_tables_match_their_json(path):
    """Each row of the run's printed table (ours, reference, ratio, best round) stands in docs/results.md."""
    result = json.loads(_read(path))
    rows = _table_rows(_results_section(path.relative_to(ROOT).as_posix()))
    if "table" not in result:  # beam_vs_cli.json: rows of images per second and their ratio
        for row in result["rows"]:
            assert row["name"] in rows, f"{path.name}: row {row['name']!r} missing from docs/results.md"
            expected = [f"{row['kc_colorize_img_s']:.3f}", f"{row['beam_img_s']:.3f}",
                        f"{row['ratio_beam_over_cli']:.2f}"]
            assert [c.strip("*") for c in rows[row["name"]][:3]] == expected, (path.name, row["name"])
        return
    printed = {}
    for line in result["table"].splitlines():
        for row in result["rows"]:
            if line.startswith(row["name"]):
                printed[row["name"]] = line[len(row["name"]):].split()[:4]
    assert printed
    for name, expected in printed.items():
        assert name in rows, f"{path.name}: row {name!r} missing from docs/results.md"
        got = [cell.strip("*") for cell in rows[name][:4]]
        assert got == expected, f"{path.name}, {name}: docs/results.md has {got}, the file {expected}"


@pytest.mark.parametrize("path", _committed("export/report*.json"), ids=lambda p: p.name)
def test_tflite_report_table_matches_its_json(path):
    report = json.loads(_read(path))
    section = _results_section(path.relative_to(ROOT).as_posix())
    assert (f"{report['saved_model_latency_ms']:.1f} ({report['saved_model_latency_min_ms']:.1f}) ms"
            in section)
    rows = _table_rows(section)
    for variant in report["variants"]:
        expected = [
            f"{variant['size_mb']:.1f}",
            f"{variant['latency_ms']:.1f} ({variant['latency_min_ms']:.1f})",
            f"{variant['latency_vs_saved_model']:.2f}x ({variant['latency_min_vs_saved_model']:.2f}x)",
            f"{variant['ab_mae_vs_keras']:.1e}",
            f"{variant['ab_max_abs_vs_keras']:.1e}",
            f"{variant['paper_mae_delta']:+.5f}",
        ]
        if report.get("guided"):  # a guided model's report also measures every variant with hints given
            expected += [f"{variant['ab_mae_vs_keras_hints']:.1e}", f"{variant['ab_max_abs_vs_keras_hints']:.1e}"]
        got = rows.get(variant["variant"])
        assert got is not None and got[:len(expected)] == expected, (variant["variant"], got)


def test_headline_figures_are_not_copied_out_of_the_results_page():
    """The bundled model's and the runs' validation MAEs live in docs/results.md only."""
    text = _read(RESULTS)
    section = text[text.index("## Real photos on 2 CPU cores"):]
    section = section[:section.index("\n## ", 1)]
    figures = set(re.findall(r"\b0\.0\d{5}\b", _table_rows(section).__repr__()))
    assert "0.026497" in figures
    copies = {}
    for path in [ROOT / "README.md", ROOT / "BUILD_NOTES.md", *sorted((ROOT / "experiments").glob("*.flags"))]:
        found = sorted(f for f in figures if f in _read(path))
        if found:
            copies[path.relative_to(ROOT).as_posix()] = found
    assert not copies, f"figures of docs/results.md copied elsewhere (link to it instead): {copies}"
