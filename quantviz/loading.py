"""Load a model reference: ``sample:NAME``, ``file.py:factory`` or an exported program ``.pt2``.

Example::

    spec = load_model("sample:digits_cnn")
    spec = load_model("my_models.py:make_model")   # runs that file's code: trust it
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import zipfile
from pathlib import Path
from typing import Any, Iterator

import torch

from quantviz.catalog import load_sample
from quantviz.errors import LoadError
from quantviz.model_spec import ModelSpec
from quantviz.torch_lock import TORCH_LOCK

FACTORY_CONTRACT = ("a factory must return a quantviz.ModelSpec, or a tuple (model, example_inputs) or (model, "
                    "example_inputs, example_kwargs) where model is a torch.nn.Module, example_inputs a tuple of "
                    "forward's positional arguments and example_kwargs a dict of its keyword ones: tensors, or "
                    "dicts, lists and tuples of tensors (e.g. (tokens, {'input_pos': pos}), {'attention_mask': mask})")


def nested_tensors(value: Any) -> bool:
    """True when ``value`` is a tensor or a dict/list/tuple whose leaves are all tensors:
    ``nested_tensors((ids, {"input_pos": pos}))`` is True."""
    leaves = torch.utils._pytree.tree_leaves(value)
    return bool(leaves) and all(isinstance(t, torch.Tensor) for t in leaves)


def load_model(ref: str) -> ModelSpec:
    """The model behind ``ref`` (``sample:NAME``, ``path/to/file.py:factory`` or ``program.pt2``), built under
    ``TORCH_LOCK`` (never while another thread's stage traces).

    >>> load_model("sample:digits_cnn").name
    'digits_cnn'
    """
    with TORCH_LOCK:
        return _load(ref)


def _load(ref: str) -> ModelSpec:
    if ref.startswith("sample:"):
        return _load_sample(ref.removeprefix("sample:"))
    if ref.endswith(".pt2"):
        return load_exported_program(Path(ref))
    path, sep, factory = ref.rpartition(":")
    if not sep or not path.endswith(".py"):
        raise LoadError(f"cannot read model reference {ref!r}: use sample:NAME, path/to/file.py:factory or "
                        "path/to/program.pt2")
    return _load_factory(Path(path), factory)


def _load_sample(name: str) -> ModelSpec:
    return load_sample(name)


def _load_factory(path: Path, factory: str) -> ModelSpec:
    if not path.is_file():
        raise LoadError(f"the file {str(path)!r} does not exist")
    module_name = f"quantviz_user_{path.stem}_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {str(path)!r} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file failed to import
        raise LoadError(f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, factory, None)
    if not callable(fn):
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                 and getattr(v, "__module__", None) == module_name]
        raise LoadError(f"the file {str(path)!r} has no factory function {factory!r} (functions there: "
                        f"{', '.join(found) or 'none'}); {FACTORY_CONTRACT}")
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001
        raise LoadError(f"the factory {factory!r} raised {type(exc).__name__}: {exc}") from exc
    return as_spec(value, name=f"{path.name}:{factory}", where=f"factory {factory!r}")


def as_spec(value: Any, name: str, where: str = "the factory") -> ModelSpec:
    """Accept a ModelSpec, ``(model, example_inputs)`` or ``(model, example_inputs, example_kwargs)`` from a
    factory: ``as_spec((model, (ids,), {"attention_mask": mask}), "enc").example_kwargs`` -> ``{"attention_mask":
    mask}``."""
    if isinstance(value, ModelSpec):
        return value
    if isinstance(value, tuple) and len(value) in (2, 3) and isinstance(value[0], torch.nn.Module):
        model, inputs, kwargs = (*value, {}) if len(value) == 2 else value
        if isinstance(inputs, torch.Tensor):
            inputs = (inputs,)
        if isinstance(inputs, (tuple, list)) and all(nested_tensors(t) for t in inputs) and \
                isinstance(kwargs, dict) and all(isinstance(k, str) and nested_tensors(v) for k, v in kwargs.items()):
            return ModelSpec(name=name, model=model.eval(), example_inputs=tuple(inputs), example_kwargs=dict(kwargs))
    raise LoadError(f"{where} returned {type(value).__name__}, which quantviz cannot use; {FACTORY_CONTRACT}")


def load_exported_program(path: Path) -> ModelSpec:
    """Load a ``torch.export.save`` file. The archive is checked first; nothing in it is unpickled as code."""
    if not path.is_file():
        raise LoadError(f"the file {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):
        raise LoadError(f"{str(path)!r} is not an exported program archive (torch.export.save writes a zip); "
                        "refusing to read it")
    try:
        with _quiet("torch.export"):  # it logs the failure with a traceback; the LoadError below says it in words
            ep = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise LoadError(f"{str(path)!r} is not a readable exported program: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    inputs, kwargs = ep.example_inputs if ep.example_inputs else (None, None)
    if not inputs and not kwargs:
        raise LoadError(f"{str(path)!r} has no example inputs stored; export with example inputs and save again")
    return ModelSpec(name=path.name, model=ep.module(), example_inputs=tuple(inputs or ()),
                     example_kwargs=dict(kwargs or {}), exported_program=ep)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_in_worker(ref: str) -> str:
    """Load ``ref`` in a worker process (``quantviz.workers``) and return the model's name, or raise
    :class:`LoadError` saying why it does not load: a missing file, a syntax error, a factory that raises, or one
    that kills its process (an abort, out of memory). Needs no ``TORCH_LOCK``, so the answer comes at once even
    while a long stage runs in this process; a model that loads is then loaded here by ``load_model``.

        check_in_worker("missing.py:make_model")   # LoadError: the file 'missing.py' does not exist
    """
    from quantviz.workers import WorkerDied, WorkerError, call_in_worker

    try:
        return call_in_worker(_name_of, ref, what=f"the model {ref}")
    except WorkerError as exc:
        raise LoadError(exc.message if exc.kind in ("LoadError", "StageError") else
                        f"loading {ref!r} raised {exc.kind}: {exc.message}") from None
    except WorkerDied as died:
        last = f"; it last printed: {died.last_lines[-1]}" if died.last_lines else ""
        raise LoadError(f"loading {ref!r} {died.cause} its process{last}") from None


def _name_of(ref: str) -> str:
    return _load(ref).name
