"""The Chameleon strategies and the ablations that isolate each of its parts.

| name        | search agent        | measured per iteration                                   |
|-------------|---------------------|----------------------------------------------------------|
| `sa`        | simulated annealing | the whole plan (epsilon-greedy), AutoTVM (annealing.py)   |
| `rl`        | PPO                 | the whole plan (epsilon-greedy)                          |
| `sa+as`     | simulated annealing | one representative per k-means cluster                   |
| `rl+as`     | PPO                 | one representative per cluster; duplicates dropped       |
| `chameleon` | PPO                 | one per cluster; duplicates and invalid ones synthesized; |
|             |                     | a quarter: the best-predicted unmeasured neighbours of    |
|             |                     | the 16 best measured (local refinement, not in the paper) |

Local refinement is this project's addition to the full method; the ablations keep the
paper's parts alone. Replayed on three recorded spaces (BENCHMARKS.md section 19) it raised
the seeds reaching 95% of the optimum on every one.
"""

from __future__ import annotations

import os
import warnings

from ..sampling import AdaptiveSampler, AdaptiveSamplingConfig
from .annealing import annealing_for
from .base import PolicyError, TaskContext, register
from .model_based import ModelBasedConfig, ModelBasedStrategy
from .ppo import PPOAgent

POLICY_FILE = "policy.pt"


class _CheckpointedPPO(PPOAgent):
    """A PPO agent that keeps its policy in the work directory, so a rerun resumes it."""

    def __init__(self, task: TaskContext) -> None:
        super().__init__(task.space, seed=task.seed)
        self.checkpoint = os.path.join(task.work_dir, POLICY_FILE) if task.work_dir else None
        resumed = False
        if self.checkpoint and os.path.exists(self.checkpoint):
            try:
                self.load(self.checkpoint)
                resumed = True
            except PolicyError as exc:  # the measurements are what a rerun must keep; a policy is relearned
                warnings.warn(f"{exc}; the search policy starts afresh", stacklevel=2)
        if not resumed and task.warm_start:
            self.load(task.warm_start)

    def find_maximums(self, model, n, exclude):
        found = super().find_maximums(model, n, exclude)
        if self.checkpoint:
            self.save(self.checkpoint)
        return found


CHAMELEON = ModelBasedConfig(local_share=0.25, local_top=16)
"""A quarter of each batch to local refinement around the 16 best: of the shares tried on the
recorded spaces (1/4 of the best 8, 1/4 of the best 16, 1/2 of the best 32), the best on both
GPU spaces (BENCHMARKS.md section 19)."""


def _sampler(task: TaskContext, synthesis: bool) -> AdaptiveSampler:
    return AdaptiveSampler(task.space, AdaptiveSamplingConfig(synthesis=synthesis), seed=task.seed)


@register("chameleon")
def chameleon(task: TaskContext, config: ModelBasedConfig = CHAMELEON) -> ModelBasedStrategy:
    """The full method: PPO agent + adaptive sampling + sample synthesis, + local refinement."""
    return ModelBasedStrategy(task, _CheckpointedPPO(task), config, sampler=_sampler(task, synthesis=True))


@register("rl")
def rl(task: TaskContext) -> ModelBasedStrategy:
    """PPO agent; every planned configuration measured (epsilon-greedy)."""
    return ModelBasedStrategy(task, _CheckpointedPPO(task))


@register("rl+as")
def rl_adaptive(task: TaskContext) -> ModelBasedStrategy:
    """PPO agent + adaptive sampling, without sample synthesis."""
    return ModelBasedStrategy(task, _CheckpointedPPO(task), sampler=_sampler(task, synthesis=False))


@register("sa+as")
def sa_adaptive(task: TaskContext) -> ModelBasedStrategy:
    """AutoTVM's simulated annealing + adaptive sampling (no synthesis)."""
    return ModelBasedStrategy(task, annealing_for(task), sampler=_sampler(task, synthesis=False))
