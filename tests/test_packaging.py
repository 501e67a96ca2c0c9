"""pyproject lists packages by hand (kernels/ installs as quantviz_kernels): every package folder is listed."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    mapping = {v: k for k, v in conf["package-dir"].items()}  # folder -> package name
    found = set()
    for init in ROOT.glob("**/__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if rel.parts[0] in (".venv", "tests", "ui", "build") or "tests" in rel.parts or "build" in rel.parts:
            continue
        head = mapping.get(rel.parts[0], rel.parts[0])
        found.add(".".join((head, *rel.parts[1:])))
    assert found == listed
