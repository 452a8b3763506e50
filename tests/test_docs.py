"""The README's "Where things are" table names files that exist, and every package module is in it."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _where_section():
    text = (ROOT / "README.md").read_text()
    start = text.index("## Where things are")
    return text[start:text.index("\n## ", start + 1)]


def test_every_path_in_the_table_exists():
    paths = re.findall(r"`((?:keras_colorize|experiments|benchmarks|export)/[^`]*)`", _where_section())
    assert len(paths) > 40
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"README 'Where things are' names files that do not exist: {missing}"


def test_every_package_module_is_in_the_table():
    section = _where_section()
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "keras_colorize").rglob("*.py")
                     if p.name != "__init__.py" and "__pycache__" not in p.parts)
    absent = [m for m in modules if f"`{m}`" not in section]
    assert not absent, f"modules missing from README 'Where things are': {absent}"
