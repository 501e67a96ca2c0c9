"""The sweep's grid: the cross product of the values given for each config field, one cell per (model, config).

The flags come from ``PipelineConfig``'s field metadata, like ``quantviz run``'s: each takes comma-separated
values (``--flow fx,pt2e``, ``--per-channel off,on``, ``--calibration-batches 8,32``). A field not given keeps
its default; ``--skip-module`` (repeatable) applies to every cell.

Example::

    cells = build_grid(["sample:conv_add"], {"flow": ["fx", "pt2e"], "per_channel": [False, True]})
    [c.label for c in cells]   # ['flow=fx per_channel=off', 'flow=fx per_channel=on', ...]
"""
from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass, fields
from typing import Any

from quantviz.backends import normalize
from quantviz.config import ConfigError, PipelineConfig
from quantviz.flows import check, choices_of

TRUE, FALSE = ("on", "true", "yes", "1"), ("off", "false", "no", "0")


@dataclass(frozen=True)
class Cell:
    """One model under one configuration. ``label`` names the configuration by the fields the sweep varies."""

    id: str
    model: str
    config: PipelineConfig
    label: str
    # the fields the sweep's flags set: the backend's declared defaults leave them alone (``--flow fx,pt2e --backend
    # xnnpack`` runs an fx cell; ``--backend xnnpack`` alone, XNNPACK's pt2e: ``with_backend_defaults``)
    explicit: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "config": self.config.to_dict(), "label": self.label}


def flag_of(f) -> str:
    """The sweep's flag of a field: ``quantviz run``'s, but a switch that is on by default is named for the field
    (``--check-guards on,off``, not ``--no-check-guards``)."""
    if f.default is True:
        return "--" + f.name.replace("_", "-")
    return f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def add_sweep_options(p: argparse.ArgumentParser) -> None:
    """One flag per PipelineConfig field, each taking a comma-separated list of values to sweep."""
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="sample:NAME, path/to/file.py:factory, or path/to/program.pt2 (files are shipped to the "
                        "workers)")
    for f in fields(PipelineConfig):
        meta, default = f.metadata, f.default
        if isinstance(default, tuple):  # skip_modules: the same for every cell
            p.add_argument(flag_of(f), dest=f.name, action="append", default=[], metavar=meta.get("metavar"),
                           help=meta["help"] + " (repeatable; applies to every cell)")
            continue
        if isinstance(default, bool):
            shown = "off,on"
        elif choices_of(f):
            shown = ",".join(str(c) for c in choices_of(f))
        else:
            shown = meta.get("metavar") or "V"
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "metavar": shown,
                                  "help": f"{meta['help']}; comma-separated values to sweep "
                                          f"(default: {_show(default)})"}
        if isinstance(default, bool):
            kwargs.update(nargs="?", const="on")  # a bare --per-channel means on, as in `quantviz run`
        p.add_argument(flag_of(f), **kwargs)


def _show(value: Any) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def parse_values(name: str, text: str) -> list[Any]:
    """``text`` (comma-separated) as typed values of the config field ``name``; ConfigError on a bad value."""
    f = next(x for x in fields(PipelineConfig) if x.name == name)
    out: list[Any] = []
    for raw in (t.strip() for t in str(text).split(",")):
        if not raw:
            continue
        if isinstance(f.default, bool):
            if raw.lower() not in TRUE + FALSE:
                raise ConfigError(f"{flag_of(f)}: {raw!r} is not one of off, on")
            value: Any = raw.lower() in TRUE
        elif isinstance(f.default, int):
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{flag_of(f)}: {raw!r} is not a whole number") from None
        else:
            value = raw
            choices = choices_of(f)
            if choices and value not in choices:
                raise ConfigError(f"{flag_of(f)}: {raw!r} is not one of {', '.join(choices)}")
        if value not in out:
            out.append(value)
    if not out:
        raise ConfigError(f"{flag_of(f)}: no value given")
    return out


def values_from_args(args: argparse.Namespace) -> dict[str, list[Any]]:
    """The swept values of every field the command line set (fields left out keep their default)."""
    values: dict[str, list[Any]] = {}
    for f in fields(PipelineConfig):
        given = getattr(args, f.name, None)
        if isinstance(f.default, tuple):
            values[f.name] = [tuple(given or ())]
        elif given is not None:
            values[f.name] = parse_values(f.name, given)
    return values


def label_of(config: PipelineConfig, varied: list[str]) -> str:
    """``flow=pt2e partitioner=xnnpack``: the fields the sweep varies; ``defaults`` when it varies none."""
    parts = [f"{name}={_show(getattr(config, name))}" for name in varied]
    return " ".join(parts) or "defaults"


def build_grid(models: list[str], values: dict[str, list[Any]]) -> list[Cell]:
    """Every model under every combination of ``values`` (field name -> list of values), model by model, in the
    order the values were given. Raises ConfigError for a combination PipelineConfig refuses."""
    names = [f.name for f in fields(PipelineConfig) if f.name in values]
    varied = [n for n in names if len(values[n]) > 1]
    combos = [dict(zip(names, combo)) for combo in itertools.product(*(values[n] for n in names))]
    configs = [normalize(PipelineConfig(**c)) for c in combos]  # --partitioner xnnpack is --backend xnnpack
    for config in configs:
        check(config)  # what a backend or flow cannot take: a ConfigError before anything runs
    cells = []
    for model in dict.fromkeys(models):
        for config in configs:
            cells.append(Cell(f"c{len(cells):03d}", model, config, label_of(config, varied), tuple(names)))
    return cells
