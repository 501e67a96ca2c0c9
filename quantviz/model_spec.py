"""What a model factory hands to quantviz: the model and the data to drive it."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import torch


@dataclass(frozen=True, eq=False)  # tensors have no truth value: two batches are equal only when they are one
class Batch:
    """One call of the model's forward: positional ``args`` and keyword ``kwargs``, each a tensor or a dict, list or
    tuple of tensors (what ``torch.export.export(model, args, kwargs)`` takes)::

        Batch((input_ids,), {"attention_mask": mask, "cache": {"k": k, "v": v}})
        # model(input_ids, attention_mask=mask, cache={"k": k, "v": v})

    A plain tuple is a batch of positional arguments only (``(x,)`` is ``Batch((x,))``).
    """

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


# one call of forward: a tuple of positional arguments, or a Batch with keyword arguments too
Inputs = Union[tuple[Any, ...], Batch]


def as_batch(inputs: Any) -> Batch:
    """``inputs`` as a Batch: ``as_batch((x,))`` -> ``Batch((x,), {})``; a Batch is returned as it is."""
    if isinstance(inputs, Batch):
        return inputs
    return Batch(tuple(inputs), {})


def call(model: Any, inputs: Any) -> Any:
    """``model(*args, **kwargs)`` for one batch (a tuple or a Batch)."""
    b = as_batch(inputs)
    return model(*b.args, **b.kwargs)


def _like(value: Any, example: Any) -> Any:
    """``value`` with its dicts' keys in ``example``'s order (pytree flattens a dict in its key order)."""
    if isinstance(value, dict) and isinstance(example, dict) and set(value) == set(example):
        return {k: _like(value[k], example[k]) for k in example}
    if isinstance(value, (list, tuple)) and isinstance(example, (list, tuple)) and len(value) == len(example):
        return type(value)(_like(v, e) for v, e in zip(value, example))
    return value


def flat_inputs(inputs: Any, like: Any = None) -> tuple[Any, ...]:
    """The leaves of one batch in the order an exported program (and the ExecuTorch runtime, which takes flat
    inputs) expects them: ``torch.utils._pytree`` order of ``(args, kwargs)``, keyword dicts in the order of
    ``like`` (the example batch the program was exported with)::

        flat_inputs(Batch((ids,), {"cache": {"k": k, "v": v}}))   # (ids, k, v)
    """
    b = as_batch(inputs)
    tree: Any = (b.args, b.kwargs)
    if like is not None:
        e = as_batch(like)
        tree = _like(tree, (e.args, e.kwargs))
    return tuple(torch.utils._pytree.tree_leaves(tree))


def _tree(inputs: Any) -> Any:
    b = as_batch(inputs)
    return (tuple(b.args), dict(b.kwargs))


def _dim_range(dim: Any) -> tuple[int | None, int | None]:
    """(min, max) of a ``torch.export.Dim`` (None where unbounded or chosen by torch.export)."""
    lo, hi = getattr(dim, "min", None), getattr(dim, "max", None)
    big = 2 ** 62
    return (int(lo) if isinstance(lo, int) else None, int(hi) if isinstance(hi, int) and hi < big else None)


def _in_range(size: int, bounds: tuple[int | None, int | None]) -> bool:
    lo, hi = bounds
    return (lo is None or size >= lo) and (hi is None or size <= hi)


def _range_text(bounds: tuple[int | None, int | None]) -> str:
    lo, hi = bounds
    return f"[{'?' if lo is None else lo}, {'∞' if hi is None else hi}]"


def input_paths(inputs: Any, names: tuple[str, ...] = ()) -> list[str]:
    """The name of every leaf of one batch, in ``flat_inputs`` order: a positional argument by ``names`` (else
    ``input{i}``), a keyword one by its key, nested parts by their path::

        input_paths(Batch((ids,), {"cache": {"k": k, "v": v}}), ("input_ids",))
        # ['input_ids', "cache['k']", "cache['v']"]
    """
    b = as_batch(inputs)
    keystr = torch.utils._pytree.keystr
    out = []
    for i, a in enumerate(b.args):
        root = names[i] if i < len(names) else f"input{i}"
        out += [root + keystr(p) for p, _ in torch.utils._pytree.tree_flatten_with_path(a)[0]]
    for k, v in b.kwargs.items():
        out += [k + keystr(p) for p, _ in torch.utils._pytree.tree_flatten_with_path(v)[0]]
    return out


@dataclass
class LanguageModelTask:
    """Marks a causal language model: its output is next-token logits ``(batch, seq, vocab)``, and the labels of
    ``ModelSpec.eval_batches`` are the next tokens ``(batch, seq)`` of held-out text. The run stage then reports
    perplexity, next-token accuracy and top-1 agreement with the float model for the reference and the runtime, and
    generates ``steps`` tokens greedily from ``prompt`` with each, naming the first step where they differ::

        LanguageModelTask(prompt=ids[None, :64], steps=32, decode=lambda ids: "".join(map(chr, ids)))

    The model takes one input, token ids of the example's length; generation slides that window along.
    """

    prompt: torch.Tensor  # (1, seq) token ids generation starts from, as long as the example input
    steps: int = 32  # greedy generation steps
    decode: Callable[[list[int]], str] | None = None  # ids -> text, to show what was generated
    text: str = ""  # what the held-out text is, e.g. "pydoc_data.topics: 16 held-out topics"


def method_module(model: torch.nn.Module, attr: str) -> torch.nn.Module:
    """A module whose ``forward`` is ``model.<attr>``, with that method's signature (torch.export exports a module's
    forward; the weights stay ``model``'s own, under the prefix ``model.``)::

        torch.export.export(method_module(model, "decode"), (token, pos, k, v))
    """
    bound = getattr(model, attr)
    if not callable(bound):
        raise TypeError(f"{type(model).__name__}.{attr} is not a method")

    class _Method(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(self.model, attr)(*args, **kwargs)

    # torch.export binds dynamic_shapes and kwargs by the method's own argument names
    _Method.forward.__signature__ = inspect.signature(getattr(type(model), attr))  # type: ignore[attr-defined]
    _Method.__name__ = _Method.__qualname__ = f"{type(model).__name__}_{attr}"
    return _Method()


@dataclass
class Method:
    """A method of the model shipped in the same ``.pte`` beside ``forward`` (a language model's ``decode`` beside
    its prefill), called through the model so the weights are shared::

        Method("decode", example_inputs=(token, pos, k_cache, v_cache), batches=[(token, pos, k, v), ...])
        # model.decode(token, pos, k_cache, v_cache); the .pte method "decode"

    ``attr`` is the method's name on the model (default: ``name``, the .pte method's name); ``batches`` are what
    the run stage compares float and runtime on (default: the example once); ``dynamic_shapes`` as torch.export
    takes them for (example_inputs, example_kwargs).
    """

    name: str
    example_inputs: tuple[Any, ...] = ()
    example_kwargs: dict[str, Any] = field(default_factory=dict)
    dynamic_shapes: Any = None
    batches: list[Inputs] | None = None
    attr: str = ""  # the model's method; "" = name
    description: str = ""

    @property
    def attribute(self) -> str:
        """The model's method this one calls: ``attr``, else ``name``."""
        return self.attr or self.name

    @property
    def example(self) -> Any:
        """The example as one batch (a tuple, or a ``Batch`` with keyword inputs)."""
        return Batch(tuple(self.example_inputs), dict(self.example_kwargs)) if self.example_kwargs \
            else self.example_inputs

    def call(self, model: torch.nn.Module, inputs: Any) -> Any:
        """``model.<attribute>(*args, **kwargs)`` for one batch."""
        b = as_batch(inputs)
        return getattr(model, self.attribute)(*b.args, **b.kwargs)

    def export(self, model: torch.nn.Module, **options: Any) -> Any:
        """``torch.export.export`` of ``model.<attribute>`` on the example (``method_module``)."""
        return torch.export.export(method_module(model, self.attribute), tuple(self.example_inputs),
                                   kwargs=dict(self.example_kwargs) or None, dynamic_shapes=self.dynamic_shapes,
                                   **options)

    def comparison_batches(self) -> list[Inputs]:
        """What the run stage compares float, reference and runtime on: ``batches``, else the example."""
        return list(self.batches) if self.batches else [self.example]

    def flat(self, inputs: Any) -> tuple[Any, ...]:
        """One batch's leaves in the order the method's program takes them."""
        return flat_inputs(inputs, like=self.example)

    def as_spec(self, model: torch.nn.Module) -> "ModelSpec":
        """This method of ``model`` as a one-method spec (its forward is the method), to read its inputs as a
        spec's: ``method.as_spec(model).input_paths()`` -> ``['token', 'pos', 'k_cache', 'v_cache']``."""
        names = tuple(list(inspect.signature(getattr(model, self.attribute)).parameters)[:len(self.example_inputs)])
        return ModelSpec(self.name, method_module(model, self.attribute), tuple(self.example_inputs),
                         example_kwargs=dict(self.example_kwargs), dynamic_shapes=self.dynamic_shapes,
                         input_names=names)

    def mismatch(self, model: torch.nn.Module, inputs: Any) -> str:
        """Why one batch does not fit the method's program ("" when it does), as ``ModelSpec.mismatch`` says it::

            decode.mismatch(model, (token, pos, k[:, :5], v))   # "k_cache is (1, 5, 64) float32, the example ..."
        """
        return self.as_spec(model).mismatch(inputs)


@dataclass
class ModelSpec:
    """A model plus the data the flow needs.

    Example::

        spec = ModelSpec(name="mine", model=MyNet().eval(), example_inputs=(torch.randn(1, 3, 32, 32),))

    ``calibration_batches`` feed the observers (default: the example inputs once).
    ``eval_batches`` are ``(inputs, labels)`` pairs; with labels, quantviz reports task accuracy.
    Every batch must have the example inputs' shapes: the ``.pte`` is built for those shapes.
    Inputs may be integer tensors (token ids, masks); ``input_names`` names them in order, e.g.
    ``ModelSpec("enc", model, (ids, mask), input_names=("input_ids", "attention_mask"))``.
    """

    name: str
    model: torch.nn.Module
    example_inputs: tuple[Any, ...]  # forward's positional arguments
    calibration_batches: list[Inputs] | None = None
    eval_batches: list[tuple[Inputs, torch.Tensor | None]] | None = None
    description: str = ""
    exported_program: Any = None  # set when the model came from a .pt2 file
    input_names: tuple[str, ...] = ()  # forward's argument names, e.g. ("input_ids", "attention_mask"); () = unnamed
    language_model: LanguageModelTask | None = None  # a causal LM: perplexity, agreement, generation (run stage)
    extra: dict[str, Any] = field(default_factory=dict)
    example_kwargs: dict[str, Any] = field(default_factory=dict)  # forward's keyword arguments, nested allowed
    dynamic_shapes: Any = None  # torch.export's dynamic_shapes for (example_inputs, example_kwargs); None = static
    # more methods shipped in the same .pte beside forward (decode beside a prefill forward); () = forward only
    methods: tuple[Method, ...] = ()

    def __post_init__(self) -> None:
        names = [m.name for m in self.methods]
        if "forward" in names or len(set(names)) != len(names):
            raise ValueError(f"ModelSpec.methods are the methods beside forward, each named once in the .pte; got "
                             f"{', '.join(names)}")

    @property
    def example(self) -> Any:
        """The example as one batch: the ``example_inputs`` tuple, or a ``Batch`` when there are keyword inputs."""
        return Batch(tuple(self.example_inputs), dict(self.example_kwargs)) if self.example_kwargs \
            else self.example_inputs

    @property
    def structured(self) -> str:
        """What a flow that traces positional tensors of fixed shapes (fx) cannot take, in words ("" for none):
        "keyword inputs (attention_mask, cache)", "dynamic dimensions"."""
        parts = []
        if self.example_kwargs:
            parts.append(f"keyword inputs ({', '.join(self.example_kwargs)})")
        if self.dynamic_shapes is not None:
            parts.append("dynamic dimensions (dynamic_shapes)")
        return " and ".join(parts)

    def export(self, model: torch.nn.Module | None = None, **options: Any) -> Any:
        """``torch.export.export`` of ``model`` (default: the float model) on the example, with its keyword inputs
        and dynamic shapes."""
        return torch.export.export(self.model if model is None else model, tuple(self.example_inputs),
                                   kwargs=dict(self.example_kwargs) or None, dynamic_shapes=self.dynamic_shapes,
                                   **options)

    @property
    def method_names(self) -> list[str]:
        """Every method the ``.pte`` holds: ``["forward", "decode"]`` (``["forward"]`` without ``methods``)."""
        return ["forward", *(m.name for m in self.methods)]

    def method(self, name: str) -> Method:
        """The extra method ``name`` (a KeyError naming the others when there is none)."""
        for m in self.methods:
            if m.name == name:
                return m
        raise KeyError(f"{self.name} has no method {name!r} (its methods: {', '.join(self.method_names)})")

    def export_methods(self, model: torch.nn.Module | None = None, **options: Any) -> dict[str, Any]:
        """``Method.export`` of every extra method of ``model`` (default: the float model), by name::

            spec.export_methods(quantized)   # {"decode": ExportedProgram}
        """
        model = self.model if model is None else model
        return {m.name: m.export(model, **options) for m in self.methods}

    def export_call(self, source: str = "model") -> str:
        """The bare ``torch.export.export`` call ``export`` makes, as a user's script writes it."""
        extra = (", kwargs=example_kwargs" if self.example_kwargs else "") + \
            (", dynamic_shapes=dynamic_shapes" if self.dynamic_shapes is not None else "")
        return f"torch.export.export({source}, example_inputs{extra})"

    def flat(self, inputs: Any) -> tuple[Any, ...]:
        """One batch's leaves in the order the exported program (and the runtime) takes them (``flat_inputs``)."""
        return flat_inputs(inputs, like=self.example)

    def dynamic_dims(self) -> dict[str, dict[int, tuple[int | None, int | None]]]:
        """The dimensions ``dynamic_shapes`` declares, per example leaf (named as ``input_paths``): dim -> (min,
        max), None where torch.export chooses (``Dim.AUTO``, no bound)::

            spec.dynamic_dims()   # {'input_ids': {1: (2, 64)}, 'attention_mask': {1: (2, 64)}}
        """
        if self.dynamic_shapes is None:
            return {}
        b = as_batch(self.example)
        try:
            bound = inspect.signature(self.model.forward).bind(*b.args, **b.kwargs).arguments
        except (TypeError, ValueError):
            bound = {**{f"input{i}": a for i, a in enumerate(b.args)}, **b.kwargs}
        shapes = self.dynamic_shapes
        if not isinstance(shapes, dict):  # a tuple/list: one entry per argument, in forward's order
            shapes = dict(zip(bound, shapes))
        names = {name: (self.input_names[i] if i < len(self.input_names) else name) if i < len(b.args) else name
                 for i, name in enumerate(bound)}
        out: dict[str, dict[int, tuple[int | None, int | None]]] = {}

        def walk(value: Any, shape: Any, path: str) -> None:
            if isinstance(value, torch.Tensor):
                dims = shape.items() if isinstance(shape, dict) else enumerate(shape) \
                    if isinstance(shape, (list, tuple)) else ()
                found = {int(d): _dim_range(dim) for d, dim in dims if dim is not None}
                if found:
                    out[path] = found
            elif isinstance(value, dict) and isinstance(shape, dict):
                for k, v in value.items():
                    walk(v, shape.get(k), f"{path}[{k!r}]")
            elif isinstance(value, (list, tuple)) and isinstance(shape, (list, tuple)):
                for i, (v, sh) in enumerate(zip(value, shape)):
                    walk(v, sh, f"{path}[{i}]")

        for name, value in bound.items():
            walk(value, shapes.get(name), names[name])
        return out

    def mismatch(self, inputs: Any) -> str:
        """Why one batch does not fit the program built from the example ("" when it does): another structure,
        or a shape or dtype other than the example's outside the declared dynamic dimensions and their ranges::

            spec.mismatch(Batch((ids[:, :3],), {...}))   # "input_ids is (1, 3) int64, the example is (1, 8) ..."
        """
        example, got = flat_inputs(self.example), flat_inputs(inputs, like=self.example)
        paths = self.input_paths()
        if torch.utils._pytree.tree_structure(_like(_tree(inputs), _tree(self.example))) != \
                torch.utils._pytree.tree_structure(_tree(self.example)):
            return (f"has {len(got)} input(s) ({', '.join(input_paths(inputs, self.input_names))}), the example "
                    f"has {len(example)} ({', '.join(paths)})")
        dynamic = self.dynamic_dims()
        for path, e, g in zip(paths, example, got):
            if not (isinstance(e, torch.Tensor) and isinstance(g, torch.Tensor)):
                continue
            free = dynamic.get(path, {})
            same = e.dtype == g.dtype and e.dim() == g.dim() and all(
                a == b or (d in free and _in_range(b, free[d])) for d, (a, b) in enumerate(zip(e.shape, g.shape)))
            if not same:
                declared = "; dynamic: " + ", ".join(f"dim {d} in {_range_text(r)}" for d, r in free.items()) \
                    if free else ""
                return (f"{path} is {tuple(g.shape)} {str(g.dtype).replace('torch.', '')}, the example is "
                        f"{tuple(e.shape)} {str(e.dtype).replace('torch.', '')}{declared}")
        return ""

    def input_paths(self) -> list[str]:
        """Every example leaf's name, in the runtime's order: ``['input_ids', 'attention_mask', "cache['k']"]``."""
        return input_paths(self.example, self.input_names)

    def input_name(self, index: int) -> str:
        """The name of input ``index`` (``input_names``), or ``input{index}``."""
        return self.input_names[index] if index < len(self.input_names) else f"input{index}"

    def arranged(self, inputs: Any) -> Any:
        """One batch with its keyword dicts in the example's key order (the order the program's flat inputs are
        in); a tuple of positional inputs is returned as it is."""
        if not isinstance(inputs, Batch):
            return inputs
        e = as_batch(self.example)
        args, kwargs = _like((tuple(inputs.args), dict(inputs.kwargs)), (e.args, e.kwargs))
        return Batch(args, kwargs)

    def calibration_data(self, limit: int) -> list[Inputs]:
        """The first ``limit`` calibration batches, or the example inputs when there are none."""
        batches = self.calibration_batches or [self.example]
        return [self.arranged(b) for b in batches[: max(1, limit)]]

    def comparison_batches(self) -> list[Inputs]:
        """Inputs used for end-to-end numerics: evaluation data if any, else calibration data."""
        if self.eval_batches:
            return [self.arranged(inputs) for inputs, _ in self.eval_batches]
        return [self.arranged(b) for b in self.calibration_batches or [self.example]]
