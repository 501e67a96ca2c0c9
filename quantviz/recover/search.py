"""The recovery search over measured trials: rank, try singles, add greedily until the target is met, then drop
every change the target does not need; the winner is the smallest set that meets it.

Every figure is a trial of the whole flow run to the runtime (the ``evaluate`` function runs change sets; it
never estimates). The order of the first tries comes from the base run's blame table (each weighted layer's
local error, ``Trial.layer_scores``); after that, from what each change measured on its own (its gain over the
base: sensitivity, measured end to end in the runtime).

1. base: the config as given, with the global changes alone beside it (they keep every layer quantized and need
   no ranking, so idle workers run them while the base runs). Met already: done.
2. singles: each candidate alone, global changes first, then per-layer ones by blame score, as many as the budget
   leaves room for (a third of it, at least 2, is kept for 3 and 4).
3. greedy: from the best single, add the change that helps most: the next ``width`` compatible candidates by
   single gain are tried together (one per worker), the best kept, until the target is met.
4. prune: while more than one change: every set minus one change is tried; the smallest that still meets the
   target replaces the set (fewest float layers, then the smallest .pte).

The winner is the smallest trial that meets the target (any phase); when none does within the budget, the
best found (highest score) is reported instead.

Example (a stub evaluator: SQNR from a table)::

    def evaluate(requests):
        return [Trial(tuple(c.id for c in r.candidates), r.phase, ok=True, sqnr_db=TABLE[r.key])
                for r in requests]

    found = search(PipelineConfig(flow="pt2e"), candidates, Target("sqnr", 40.0), evaluate, budget=12)
    found.met, found.winner.key
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from quantviz.config import PipelineConfig
from quantviz.candidates import Candidate
from quantviz.recover.trial import Engine, Request, Target, Trial, change_key

Evaluator = Callable[[list[Request]], list[Trial]]  # runs every request (in parallel where it can), in order


@dataclass
class Recovery:
    """What the search found: every trial in the order they finished, the winner (None when the target was not
    met within the budget) and the best trial found."""

    target: Target
    base_config: PipelineConfig
    candidates: list[Candidate]
    base: Trial
    trials: list[Trial]  # the base first
    winner: Trial | None
    best: Trial
    budget: int
    engine: Engine = field(default_factory=Engine)  # where the trials ran; stage reuse; wall time

    @property
    def met(self) -> bool:
        return self.winner is not None

    @property
    def chosen(self) -> Trial:
        """The winner when the target was met, else the best found."""
        return self.winner if self.winner is not None else self.best

    def candidate(self, cid: str) -> Candidate:
        return next(c for c in self.candidates if c.id == cid)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recovery":
        """A recovery back from ``to_dict`` (recover.json)."""
        trials = [Trial.from_dict(t) for t in d["trials"]]
        by_key = {t.key: t for t in trials}
        base = PipelineConfig.from_dict(d["base_config"])
        return cls(Target.from_dict(d["target"]), base,
                   [Candidate.from_dict(c) for c in d["candidates"]], by_key[d["base"]], trials,
                   by_key[d["winner"]] if d.get("winner") else None, by_key[d["best"]], d["budget"],
                   Engine.from_dict(d.get("engine", {})))

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target.to_dict(), "met": self.met, "budget": self.budget,
                "base_config": self.base_config.to_dict(), "data": self.base.data,
                "candidates": [c.to_dict() for c in self.candidates],
                "base": self.base.key, "winner": self.winner.key if self.winner else None, "best": self.best.key,
                "engine": self.engine.to_dict(), "trials": [t.to_dict() for t in self.trials]}


def rank(candidates: list[Candidate], layer_scores: dict[str, float]) -> list[Candidate]:
    """Global changes first (declaration order), then per-layer ones by their layer's blame score, largest first
    (layers without a score after, in model order); one layer's changes keep their declared order (the torchao
    flow's int8 weights before keeping the layer float)."""
    globals_ = [c for c in candidates if c.layer is None]
    per_layer = [c for c in candidates if c.layer is not None]
    position = {c.id: i for i, c in enumerate(per_layer)}
    per_layer.sort(key=lambda c: (-layer_scores.get(c.layer or "", -math.inf), position[c.id]))
    return globals_ + per_layer


def singles_budget(budget: int, n: int) -> int:
    """How many singles to try: all of them when the budget leaves a third (at least 2) for greedy and prune."""
    return max(0, min(n, budget - max(2, budget // 3)))


def compatible(c: Candidate, chosen: list[Candidate]) -> bool:
    return all(c.id != o.id and not c.conflicts(o) for o in chosen)


def search(base_config: PipelineConfig, candidates: list[Candidate], target: Target, evaluate: Evaluator,
           budget: int = 16, width: int = 2) -> Recovery:
    """Find the smallest change set of ``candidates`` that meets ``target`` within ``budget`` trials (the base
    run not counted); ``width`` trials are asked for at once in the greedy phase (one per worker)."""
    done: dict[str, Trial] = {}
    order: list[Trial] = []
    left = [budget]

    def run(requests: list[Request]) -> list[Trial]:
        fresh = [r for r in dict((r.key, r) for r in requests).values() if r.key not in done]
        counted = [r for r in fresh if r.phase != "base"][: left[0]]  # the base run is not counted
        left[0] -= len(counted)
        fresh = [r for r in fresh if r.phase == "base" or r in counted]
        for t in evaluate(fresh) if fresh else []:
            done[t.key] = t
            order.append(t)
        return [done[r.key] for r in requests if r.key in done]

    # the global changes do not depend on the base's blame ranking: they run beside the base (on idle workers)
    n_singles = singles_budget(budget, len(candidates))
    first = [c for c in candidates if c.layer is None][:n_singles]
    base = run([Request((), "base"), *(Request((c,), "single") for c in first)])[0]

    def trials_of(cs: list[Candidate]) -> Trial | None:
        return done.get(change_key(c.id for c in cs))

    if not target.met(base):
        ranked = rank(candidates, base.layer_scores)
        run([Request((c,), "single") for c in ranked[:n_singles]])
        chosen = _greedy(ranked, target, base, run, trials_of, width, left)
        if chosen is not None:
            _prune(chosen, target, run, trials_of, left)
    met = [t for t in order if target.met(t)]
    winner = min(met, key=lambda t: (*t.size(), -target.score(t))) if met else None
    best = max(order, key=target.score)
    return Recovery(target, base_config, candidates, base, order, winner, best, budget)


def _greedy(ranked: list[Candidate], target: Target, base: Trial, run, trials_of, width: int,
            left: list[int]) -> list[Candidate] | None:
    """From the best single, add changes until the target is met; the set that meets it, or None."""
    def gain(c: Candidate) -> float:
        t = trials_of([c])
        return target.score(t) - target.score(base) if t is not None and t.ok else -math.inf

    tried = [c for c in ranked if trials_of([c]) is not None]
    helpful = sorted((c for c in tried if gain(c) > 0), key=lambda c: -gain(c))
    untried = [c for c in ranked if trials_of([c]) is None]
    if not helpful and not untried:
        return None
    met = [c for c in helpful if target.met(trials_of([c]))]
    if met:
        return [met[0]]
    chosen = [helpful[0]] if helpful else []
    current = trials_of(chosen) if chosen else base
    pool = [c for c in helpful + untried if c not in chosen]
    while left[0] > 0:
        options = [c for c in pool if compatible(c, chosen)]
        if not options:
            return None
        batch = options[:max(1, width)]
        trials = run([Request(tuple(chosen + [c]), "greedy") for c in batch])
        pool = [c for c in pool if c not in batch]
        if not trials:
            return None
        best = max(trials, key=target.score)
        if target.score(best) > target.score(current):
            chosen = [*chosen, next(c for c in batch if c.id in best.candidates and c not in chosen)]
            current = best
            if target.met(best):
                return chosen
    return None


def _prune(chosen: list[Candidate], target: Target, run, trials_of, left: list[int]) -> list[Candidate]:
    """Drop every change the target does not need: while a set minus one change still meets it, keep the
    smallest such set."""
    while len(chosen) > 1 and left[0] > 0:
        subsets = [[o for o in chosen if o is not c] for c in chosen]
        run([Request(tuple(s), "prune") for s in subsets if trials_of(s) is None])
        still = [(trials_of(s), s) for s in subsets if trials_of(s) is not None and target.met(trials_of(s))]
        if not still:
            break
        chosen = min(still, key=lambda ts: (*ts[0].size(), -target.score(ts[0])))[1]
    return chosen
