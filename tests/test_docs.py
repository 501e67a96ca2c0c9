"""The README and docs/: a short front door, every figure table naming the script that prints it, no dead link.

- README.md stays under 10 KB and shows the two commands (`make run`, `make test`) in its first screen;
- every table of figures in README.md and docs/ (a table with a cell that is a number) is preceded by
  "printed by `SCRIPT`", SCRIPT exists and prints a table with the same first column;
- every relative link (and image) in README.md and docs/ resolves, down to the heading it points at, and every
  repository file named in backticks exists;
- docs/cli.md is what `scripts/cli_reference.py` prints from the CLI's parser.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
FIRST_SCREEN = 40  # lines a newcomer sees without scrolling
NUMBER = re.compile(r"^[-+−~≈]?\d")
PRINTED_BY = re.compile(r"printed by `([^`\s]+)", re.I)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
REPO_PATH = re.compile(r"`((?:bench|tests|scripts|quantviz|quantviz_devtools|ui|kernels|docs|sample_models|pages)"
                       r"/[\w./-]+\.(?:py|md|png|toml|sh|json|cpp|h|js|css))`")


@dataclass
class Table:
    page: Path
    line: int  # 1-based line of the header row
    header: list[str]
    rows: list[list[str]]
    before: str  # the page's text above the table

    @property
    def has_figures(self) -> bool:
        return any(NUMBER.match(_plain(c)) for row in self.rows for c in row)


def _plain(cell: str) -> str:
    return cell.strip().strip("*`").strip()


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def without_code(text: str) -> str:
    """``text`` with fenced code blocks blanked (their lines kept, so line numbers hold)."""
    return re.sub(r"(?ms)^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text)


def tables(page: Path) -> list[Table]:
    lines = without_code(page.read_text()).splitlines()
    found, i = [], 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-| :]+\|$", lines[i + 1]):
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            found.append(Table(page, i + 1, _cells(lines[i]), [_cells(x) for x in lines[i + 2:j]],
                               "\n".join(lines[:i])))
            i = j
        else:
            i += 1
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"(?m)^#+ (.*)$", without_code(page.read_text()))}


def dead_links(page: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", without_code(page.read_text()))
    dead = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            dead.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            where = file.relative_to(ROOT) if file.is_relative_to(ROOT) else file.name
            dead.append(f"{target} (no heading #{anchor} in {where})")
    return dead


def test_the_readme_is_a_front_door():
    text = README.read_text()
    assert len(text.encode()) < 10_000, f"README.md is {len(text.encode())} bytes"
    first = "\n".join(text.splitlines()[:FIRST_SCREEN])
    assert "make run" in first and "make test" in first


def test_the_readme_shows_the_app():
    assert re.search(r"!\[[^\]]*\]\(docs/img/app\.png\)", README.read_text())
    assert (ROOT / "docs" / "img" / "app.png").stat().st_size > 10_000


FIGURE_TABLES = [t for page in PAGES for t in tables(page) if t.has_figures]


def test_the_pages_have_figure_tables():
    """The reader finds the tables (a reader that finds none would pass the next test)."""
    assert len(FIGURE_TABLES) >= 11


@pytest.mark.parametrize("table", FIGURE_TABLES, ids=lambda t: f"{t.page.name}:{t.line}")
def test_every_figure_table_names_the_script_that_prints_it(table):
    named = PRINTED_BY.findall(table.before)
    assert named, f"{table.page.name}:{table.line}: no 'printed by `SCRIPT`' before this table"
    script = ROOT / named[-1]
    assert script.is_file(), f"{table.page.name}:{table.line}: {named[-1]} does not exist"
    first = _plain(table.header[0])
    assert f"| {first} |" in script.read_text(), \
        f"{table.page.name}:{table.line}: {named[-1]} prints no table whose first column is {first!r}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    assert dead_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_repository_file_named_exists(page):
    missing = [p for p in REPO_PATH.findall(page.read_text()) if not (ROOT / p).exists()]
    assert missing == []


def test_the_checks_find_what_they_look_for(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Top\n\nprinted by `bench/zoo.py`:\n\n| model | s |\n|---|---|\n| a | 1.5 |\n\n"
                    "[ok](#top) [gone](#nowhere) [file](missing.md) [web](https://example.com)\n\n"
                    "```\n| not | a table |\n|---|---|\n| 1 | 2 |\n```\n")
    (t,) = tables(page)
    assert t.has_figures and t.header == ["model", "s"] and PRINTED_BY.findall(t.before) == ["bench/zoo.py"]
    assert dead_links(page) == ["#nowhere (no heading #nowhere in p.md)", "missing.md (no such file)"]
    assert slug("Sweeps: a model zoo × configurations on Ray (`quantviz sweep`)") == \
        "sweeps-a-model-zoo--configurations-on-ray-quantviz-sweep"


def test_the_cli_page_is_what_the_script_prints():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "cli.md").read_text() == module.reference(), \
        "docs/cli.md is stale: .venv/bin/python scripts/cli_reference.py > docs/cli.md"
