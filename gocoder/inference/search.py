"""Tree search over candidates (SWE-Search's idea, arXiv 2410.20285, on gocheck's verdicts):
nodes are candidates, expanding a node is one refinement round from it (its code and first
diagnostic in the prompt, sampled at temperature), and the node to expand is picked by UCB over
the measured rewards of its subtree.

Every reward is a measurement: gocoder.inference.candidates.energy of the candidate (gocheck, tests
when given, the controller's done probability), mapped to [0, 1]. The search stops when a candidate
passes or when the budget of generated candidates is spent.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from gocoder.inference.candidates import (
    Candidate,
    LoopState,
    Sampler,
    TestResult,
    energy,
    init_state,
    refine_record,
)
from gocoder.inference.engine import Sampling
from gocoder.record import Record


def reward(c: Candidate) -> float:
    """energy (-0.5 best .. 5 worst) as a reward in [0, 1], higher is better."""
    return min(1.0, max(0.0, (5.0 - energy(c)) / 5.5))


@dataclasses.dataclass
class Tree:
    parent: list[int | None] = dataclasses.field(default_factory=list)  # per candidate index
    depth: list[int] = dataclasses.field(default_factory=list)
    visits: list[int] = dataclasses.field(default_factory=list)
    value: list[float] = dataclasses.field(default_factory=list)  # summed rewards of the subtree

    def add(self, parent: int | None, r: float) -> int:
        self.parent.append(parent)
        self.depth.append(1 if parent is None else self.depth[parent] + 1)
        self.visits.append(1)
        self.value.append(r)
        n = parent
        while n is not None:  # back-propagate the new measurement to every ancestor
            self.visits[n] += 1
            self.value[n] += r
            n = self.parent[n]
        return len(self.parent) - 1

    def ucb(self, n: int, c: float) -> float:
        total = sum(v for v, p in zip(self.visits, self.parent, strict=True) if p is None)
        return self.value[n] / self.visits[n] + c * math.sqrt(
            math.log(max(total, 1)) / self.visits[n]
        )

    def select(self, c: float, max_depth: int) -> int | None:
        """The node with the highest UCB among those that may still grow (ties: the earliest)."""
        open_ = [n for n in range(len(self.parent)) if self.depth[n] < max_depth]
        return max(open_, key=lambda n: (self.ucb(n, c), -n)) if open_ else None


def tree_search(
    gen: Sampler,
    rec: Record,
    *,
    samples: int,
    max_depth: int,
    budget: int,
    c: float = 1.0,
    sampling: Sampling | None = None,
    typecheck: bool = False,
    tests: Callable[[str], TestResult] | None = None,
) -> LoopState:
    """Roots: `samples` candidates from the plain prompt; then expand the UCB pick by one
    refinement until a candidate passes or `budget` candidates have been generated. Returns
    the loop state (trace per node)."""
    state, tree = init_state(rec), Tree()

    def add(cands: list[Candidate], parent: int | None) -> None:
        for cand in cands:
            i = tree.add(parent, reward(cand))
            state.candidates.append(cand)
            if state.best is None or energy(cand) < energy(state.candidates[state.best]):
                state.best = i
            state.trace.append(
                {
                    "iteration": state.iteration,
                    "action": "generate" if parent is None else "expand",
                    "parent": parent,
                    "code": cand.code,
                    "plan": cand.plan,
                    "energy": energy(cand),
                    "reward": reward(cand),
                    "done_prob": cand.done_prob,
                    "verdict": {
                        "syntax_ok": cand.syntax_ok,
                        "type_ok": cand.type_ok,
                        "finished": cand.finished,
                        "errors": cand.errors,
                        "tests": None if cand.tests is None else cand.tests.passed,
                        "diagnostic": cand.diagnostic,
                    },
                }
            )
        state.iteration += 1
        state.done = any(x.passed for x in state.candidates)

    add(gen.sample(rec, min(samples, budget), sampling, typecheck=typecheck, tests=tests), None)
    while not state.done and len(state.candidates) < budget:
        n = tree.select(c, max_depth)
        if n is None:
            break
        s = sampling
        if s is not None and s.seed is not None:
            s = dataclasses.replace(s, seed=s.seed + len(state.candidates))
        add(
            gen.sample(
                refine_record(rec, state.candidates[n]), 1, s, typecheck=typecheck, tests=tests
            ),
            n,
        )
    state.current = state.best
    return state
