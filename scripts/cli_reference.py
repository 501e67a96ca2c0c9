"""docs/cli.md, every command and flag of `quantviz`, generated from the CLI's own argparse parser.

    .venv/bin/python scripts/cli_reference.py > docs/cli.md     # after changing a flag or a PipelineConfig field

tests/test_docs.py checks that the committed page is what this prints, so the page cannot fall behind the parser.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's quantviz, when run as a script

from quantviz import cli  # noqa: E402
from quantviz.config import PipelineConfig  # noqa: E402

CONFIG_FIELDS = {f.name for f in fields(PipelineConfig)}
PIPELINE_COMMANDS = ("run", "why", "compare", "report")  # the commands that take MODEL and the pipeline options


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _values(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "(switch)"
    if action.choices:
        return ", ".join(f"`{c}`" for c in action.choices)
    return f"`{action.metavar or action.dest.upper()}`"


def _name(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest.upper()}`" + (" …" if action.nargs in ("+", "*") else "")
    return ", ".join(f"`{s}`" for s in action.option_strings)


def flag_table(actions: list[argparse.Action]) -> list[str]:
    rows = ["| flag | values | what it does |", "|---|---|---|"]
    for a in actions:
        rows.append(f"| {_name(a)} | {'' if not a.option_strings else _values(a)} | {_cell(a.help or '')} |")
    return rows


def _own(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def commands(parser: argparse.ArgumentParser) -> tuple[dict[str, argparse.ArgumentParser], dict[str, str]]:
    """The subcommands' parsers and their one-line help, in the order the CLI defines them."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices), {c.dest: c.help or "" for c in sub._choices_actions}


def reference() -> str:
    """The whole page, as Markdown."""
    parser = cli.build_parser()
    parsers, helps = commands(parser)
    doc = cli.__doc__ or ""
    exit_codes = next((p for p in doc.split("\n\n") if p.startswith("Exit codes")), "")
    out = ["# Command line reference", "",
           "Every command and flag of `quantviz`, printed by `scripts/cli_reference.py` from the CLI's own parser "
           "(`quantviz/cli.py`); `tests/test_docs.py` checks that this page is what the script prints. After changing "
           "a flag or a `PipelineConfig` field: `.venv/bin/python scripts/cli_reference.py > docs/cli.md`. "
           "`quantviz COMMAND --help` prints the same.", "",
           "| command | what it does |", "|---|---|",
           *[f"| [`quantviz {name}`](#quantviz-{name}) | {_cell(helps[name])} |" for name in parsers], "",
           " ".join(exit_codes.split()), "",
           "## Pipeline options", "",
           "`" + "`, `".join(PIPELINE_COMMANDS) + "` take a model and one flag per field of `quantviz.PipelineConfig` "
           "(generated from the field's metadata: the app's sidebar offers the same options, from the same fields):",
           "", *flag_table([a for a in _own(parsers["run"]) if a.dest == "model" or a.dest in CONFIG_FIELDS])]
    for name, p in parsers.items():
        own = _own(p)
        shared = name in PIPELINE_COMMANDS
        if shared:
            own = [a for a in own if a.dest != "model" and a.dest not in CONFIG_FIELDS]
        what = _cell(helps[name])
        out += ["", f"## quantviz {name}", "", what[:1].upper() + what[1:] + "."]
        if shared:
            out += ["", f"`quantviz {name} MODEL [pipeline options] [options]`: the [pipeline options](#pipeline-options), "
                        "and:" if own else f"`quantviz {name} MODEL [pipeline options]`."]
        elif not own:
            out += ["", f"`quantviz {name}` takes no options."]
        if own:
            out += ["", *flag_table(own)]
    return "\n".join(out) + "\n"


def main() -> None:
    sys.stdout.write(reference())


if __name__ == "__main__":
    main()
