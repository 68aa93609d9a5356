"""Adaptive sampling and sample synthesis (Chameleon's changes 2 and 3).

A search agent proposes ``plan_size`` candidates; rather than measuring them
all, we cluster them with k-means, choose k at the knee of the k-means loss,
and measure one representative per cluster. A representative that is already
measured, repeated in the batch, or invalid is replaced by a configuration
synthesized from the per-knob mode of its cluster instead of being dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .space import Config, Space

IsMeasured = Callable[[Config], bool]
IsValid = Callable[[np.ndarray], bool]


@dataclass(frozen=True)
class AdaptiveSamplingConfig:
    """Adaptive-sampling and synthesis settings (defaults from the paper and its release)."""

    k_start: int = 8
    """First number of clusters tried."""
    k_step: int = 8
    """Increment of k between tries (k = 8, 16, 24, ... as in the paper's release)."""
    knee_factor: float = 2.5
    """Stop at the first k whose loss is not below previous_loss / knee_factor."""
    all_knobs: bool = True
    """Cluster on all knobs scaled to [0, 1]; False clusters on the two knobs with the most choices (the release)."""
    synthesis: bool = True
    """Replace duplicate or invalid representatives by mode synthesis; False drops them (the ``rl+as`` ablation)."""
    n_init: int = 3
    """k-means restarts per k; the best loss is kept, so the knee is not an artefact of a bad start."""
    max_tries: int = 64
    """Redraws per cluster before synthesis gives up and the cluster contributes nothing."""

    def __post_init__(self) -> None:
        if self.k_start < 1 or self.k_step < 1 or self.n_init < 1 or self.max_tries < 0:
            raise ValueError("k_start, k_step and n_init must be positive and max_tries non-negative")
        if self.knee_factor <= 1.0:
            raise ValueError("knee_factor must exceed 1, or every k is a knee")


# -- clustering ------------------------------------------------------------------
def choose_k(points: np.ndarray, config: AdaptiveSamplingConfig = AdaptiveSamplingConfig(), seed: int = 0) -> tuple[int, np.ndarray]:
    """Number of clusters at the knee of the k-means loss, and the labels for it.

    With ``m`` distinct points, k runs through ``k_start, k_start + k_step, ...``,
    each capped at ``m`` (so the last k tried is ``m``). For each k after the
    first, if ``inertia(k) >= inertia(previous k) / knee_factor`` the loss has
    stopped dropping steeply and the *previous* k is returned; if every step
    drops by at least the factor, the last k tried is returned. A zero loss
    therefore ends the search at once. With ``m <= k_start`` every distinct point
    is its own cluster.
    """
    from sklearn.cluster import KMeans

    points = np.asarray(points, dtype=np.float64)
    distinct, inverse = np.unique(points, axis=0, return_inverse=True)
    if len(distinct) <= config.k_start:
        return len(distinct), inverse.reshape(-1).astype(np.int64)

    best_k, best_labels, best_loss = 0, np.zeros(0, dtype=np.int64), np.inf
    k = config.k_start
    while True:
        k = min(k, len(distinct))  # more clusters than distinct points cannot lower the loss
        fit = KMeans(n_clusters=k, n_init=config.n_init, random_state=seed).fit(points)
        if best_k and fit.inertia_ >= best_loss / config.knee_factor:
            return best_k, best_labels
        best_k, best_labels, best_loss = k, fit.labels_.astype(np.int64), fit.inertia_
        if k == len(distinct):
            return best_k, best_labels
        k += config.k_step


def representatives(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Row index of each cluster's member closest to its centroid, in label order.

    Distances are taken in ``points``' own (clustering) feature space; ties go to
    the lowest row, so the choice is deterministic.
    """
    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels)
    picked = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        members = points[rows]
        distance = np.sum((members - members.mean(axis=0)) ** 2, axis=1)
        picked.append(rows[int(np.argmin(distance))])
    return np.array(picked, dtype=np.int64)


# -- sample synthesis ---------------------------------------------------------------
def synthesize(
    members: np.ndarray,
    space: Space,
    taken: set,
    is_measured: IsMeasured,
    is_valid: IsValid | None,
    rng: np.random.Generator,
    max_tries: int = 64,
) -> np.ndarray | None:
    """A new, valid, canonical configuration built from a cluster's knob values, or None.

    Valid means inside the space's restrictions and passing ``is_valid`` (if
    given). First the exact per-knob mode of ``members`` (ties to the lowest
    index). If that is in ``taken``, measured or invalid, each knob is redrawn
    from the members' empirical distribution of that knob, so frequent values
    stay the most likely, up to ``max_tries`` times. ``taken`` is read, not updated.
    """
    members = np.atleast_2d(np.asarray(members, dtype=np.int64))
    mode = np.array([np.bincount(members[:, j]).argmax() for j in range(members.shape[1])], dtype=np.int64)
    # Drawing a member per knob independently samples each knob's empirical distribution.
    rows = rng.integers(0, len(members), size=(max_tries, members.shape[1]))
    draws = members[rows, np.arange(members.shape[1])]
    tried: set[Config] = set()
    for config in space.canonical(np.vstack([mode, draws])):
        key = space.key(config)
        if key in tried:
            continue
        tried.add(key)
        if _usable(space, key, config, taken, is_measured, is_valid):
            return config
    return None


def _usable(space: Space, key: Config, config: np.ndarray, taken: set, is_measured: IsMeasured, is_valid: IsValid | None) -> bool:
    """New, unmeasured, inside the space's restrictions and (if given) passing the task's own check."""
    if key in taken or is_measured(key) or not space.valid_mask(config)[0]:
        return False
    return is_valid is None or bool(is_valid(config))


# -- the sampler -----------------------------------------------------------------
class AdaptiveSampler:
    """Picks the configurations to measure among a search agent's candidates."""

    def __init__(self, space: Space, config: AdaptiveSamplingConfig = AdaptiveSamplingConfig(), *, seed: int = 0) -> None:
        self.space = space
        self.config = config
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.last_k = 0  # clusters chosen by the last select(), for logging
        # The release clustered on the two knobs with the most choices (ties to the first knob).
        self._top_knobs = np.sort(np.argsort(-space.dims, kind="stable")[:2])

    def features(self, configs: np.ndarray) -> np.ndarray:
        """What k-means sees of each configuration."""
        if self.config.all_knobs:
            return self.space.normalized(configs).astype(np.float64)
        # Unscaled indices (our reading of the release), so the knob with more choices weighs more.
        return configs[:, self._top_knobs].astype(np.float64)

    def select(self, candidates: np.ndarray, is_measured: IsMeasured, is_valid: IsValid | None = None) -> np.ndarray:
        """The batch to measure: one configuration per cluster, distinct and none measured.

        ``is_measured`` gets a configuration's key (``space.key``), ``is_valid``
        its index vector. Clusters whose representative is unusable get a
        synthesized configuration, or nothing when synthesis is off or fails.
        """
        candidates = self.space.canonical(np.asarray(candidates, dtype=np.int64)).reshape(-1, self.space.n_knobs)
        if not len(candidates):
            self.last_k = 0
            return candidates
        points = self.features(candidates)
        self.last_k, labels = choose_k(points, self.config, self.seed)
        reps = representatives(points, labels)
        keys = self.space.keys(candidates[reps])

        # Accept every usable representative before synthesizing, so that a
        # synthesized configuration never takes another cluster's representative.
        batch: list[np.ndarray | None] = [None] * len(reps)
        taken: set[Config] = set()
        for i, (row, key) in enumerate(zip(reps, keys)):
            if _usable(self.space, key, candidates[row], taken, is_measured, is_valid):
                batch[i] = candidates[row]
                taken.add(key)
        if self.config.synthesis:
            for i, row in enumerate(reps):
                if batch[i] is None:
                    members = candidates[labels == labels[row]]
                    batch[i] = synthesize(members, self.space, taken, is_measured, is_valid, self.rng, self.config.max_tries)
                    if batch[i] is not None:
                        taken.add(self.space.key(batch[i]))
        picked = [config for config in batch if config is not None]
        return np.array(picked, dtype=np.int64).reshape(-1, self.space.n_knobs)
