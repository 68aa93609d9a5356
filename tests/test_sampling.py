import numpy as np
import pytest

from chameleon_tune.sampling import AdaptiveSampler, AdaptiveSamplingConfig, choose_k, representatives, synthesize
from chameleon_tune.space import Knob, Space

DIMS = (12, 10, 8, 6, 5)


def make_space(dims=DIMS, conditions=None) -> Space:
    return Space(tuple(Knob(f"k{i}", tuple(range(d))) for i, d in enumerate(dims)), conditions or {})


def blobs(n_blobs: int, per_blob: int, seed: int = 0) -> np.ndarray:
    """Tight blobs in [0, 1]^4 whose centres are at least 0.3 apart."""
    rng = np.random.default_rng(seed)
    centres: list[np.ndarray] = []
    while len(centres) < n_blobs:
        c = rng.uniform(0, 1, 4)
        if all(np.linalg.norm(c - o) > 0.3 for o in centres):
            centres.append(c)
    points = np.repeat(np.array(centres), per_blob, axis=0)
    return points + rng.normal(0, 0.01, points.shape)


def clustered_candidates(space: Space, n_groups: int = 8, size: int = 64, seed: int = 0) -> np.ndarray:
    """``size`` distinct configurations in ``n_groups`` tight groups (one knob moved by +-1 from a centre)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[2, 2, 2, 2, 2], [9, 7, 5, 3, 2], [2, 7, 5, 3, 2], [9, 2, 2, 2, 2],
                        [5, 5, 2, 2, 2], [5, 2, 5, 3, 2], [2, 2, 5, 3, 2], [9, 7, 2, 2, 2]])[:n_groups]
    picked: dict[tuple, np.ndarray] = {}
    while len(picked) < size:
        config = centres[rng.integers(n_groups)].copy()
        knob = rng.integers(space.n_knobs)
        config[knob] = np.clip(config[knob] + rng.integers(-1, 2), 0, space.dims[knob] - 1)
        picked.setdefault(space.key(config), config)
    return np.array(list(picked.values()))


# -- choose_k ---------------------------------------------------------------------
@pytest.mark.parametrize("n_blobs, per_blob", [(8, 8), (16, 4), (24, 4)])
def test_choose_k_finds_the_number_of_separated_blobs(n_blobs, per_blob):
    points = blobs(n_blobs, per_blob)
    k, labels = choose_k(points, seed=0)
    assert k == n_blobs
    assert len(np.unique(labels)) == n_blobs
    # each blob is exactly one cluster
    for blob in range(n_blobs):
        assert len(np.unique(labels[blob * per_blob:(blob + 1) * per_blob])) == 1


def test_choose_k_with_few_distinct_points_gives_one_cluster_each():
    points = np.repeat(np.eye(5), 3, axis=0)
    k, labels = choose_k(points, AdaptiveSamplingConfig(k_start=8))
    assert k == 5
    assert len(np.unique(labels)) == 5
    assert all(len(np.unique(labels[i * 3:(i + 1) * 3])) == 1 for i in range(5))


def test_choose_k_stops_at_the_distinct_count_when_the_loss_keeps_dropping():
    # 12 spread points: k=8 leaves a loss, k=12 (capped) brings it to zero, a drop by far more than 2.5
    points = np.random.default_rng(1).uniform(size=(12, 3))
    assert choose_k(points, AdaptiveSamplingConfig(k_start=8, k_step=8))[0] == 12


def test_knee_factor_must_exceed_one():
    with pytest.raises(ValueError):
        AdaptiveSamplingConfig(knee_factor=1.0)


# -- representatives --------------------------------------------------------------
def test_representative_is_the_member_nearest_the_centroid():
    points = np.array([[0.0], [1.0], [10.0], [50.0], [52.0], [51.2]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    # centroids 11/3 and 51.07: nearest members are rows 1 and 5
    assert representatives(points, labels).tolist() == [1, 5]


def test_representatives_are_members_one_per_cluster():
    points = blobs(16, 4, seed=3)
    _, labels = choose_k(points)
    reps = representatives(points, labels)
    assert sorted(labels[reps].tolist()) == sorted(set(labels.tolist()))
    for row in reps:
        members = points[labels == labels[row]]
        distance = np.sum((members - members.mean(axis=0)) ** 2, axis=1)
        assert np.isclose(np.sum((points[row] - members.mean(axis=0)) ** 2), distance.min())


# -- synthesis --------------------------------------------------------------------
# per-knob modes 3, 2, 1, 0, 4; no member equals the mode configuration
MEMBERS = np.array([[3, 2, 1, 0, 0], [3, 2, 0, 1, 4], [3, 5, 1, 0, 4], [7, 2, 1, 0, 4], [3, 9, 6, 5, 4], [7, 2, 1, 2, 1]])
MODE = (3, 2, 1, 0, 4)


def never(_key) -> bool:
    return False


def test_synthesis_gives_the_mode_when_it_is_free():
    config = synthesize(MEMBERS, make_space(), set(), never, None, np.random.default_rng(0))
    assert tuple(config) == MODE


@pytest.mark.parametrize("seed", range(5))
def test_synthesis_redraws_from_member_values_when_the_mode_is_measured(seed):
    space = make_space()
    taken = {(3, 2, 1, 0, 0)}

    def is_valid(config):
        return config[0] != 7  # rejects members too

    config = synthesize(MEMBERS, space, taken, lambda key: key == MODE, is_valid, np.random.default_rng(seed))
    assert config is not None
    key = space.key(config)
    assert key != MODE and key not in taken and is_valid(config)
    assert all(value in MEMBERS[:, j] for j, value in enumerate(config))


def test_synthesis_gives_up_when_nothing_new_is_possible():
    members = np.array([[1, 1, 1, 1, 1]] * 4)
    assert synthesize(members, make_space(), set(), lambda key: True, None, np.random.default_rng(0)) is None


def test_synthesis_is_canonical():
    # knob 1 only matters when knob 0 is 1; the mode of knob 0 is 0, so knob 1 must come out 0
    space = make_space(conditions={1: (0, 1)})
    members = np.array([[0, 4, 2, 0, 0], [0, 4, 2, 0, 0], [1, 4, 2, 0, 0]])
    assert tuple(synthesize(members, space, set(), never, None, np.random.default_rng(0))) == (0, 0, 2, 0, 0)


# -- the sampler -------------------------------------------------------------------
def test_select_measures_fewer_than_all_clustered_candidates():
    space = make_space()
    candidates = clustered_candidates(space)
    batch = AdaptiveSampler(space).select(candidates, never)
    keys = space.keys(batch)
    assert 0 < len(batch) < len(candidates)
    assert len(set(keys)) == len(keys)
    assert set(keys) <= set(space.keys(candidates))


def test_select_on_spread_candidates_stays_within_the_plan():
    space = make_space()
    candidates = np.unique(space.sample(np.random.default_rng(0), 64), axis=0)
    measured = set(space.keys(candidates[::3]))
    sampler = AdaptiveSampler(space)
    batch = sampler.select(candidates, measured.__contains__)
    keys = space.keys(batch)
    assert len(batch) <= len(candidates) and len(batch) <= sampler.last_k
    assert len(set(keys)) == len(keys) and not measured & set(keys)


def test_measured_representatives_are_replaced_with_synthesis_and_dropped_without():
    space = make_space()
    candidates = clustered_candidates(space)
    first = AdaptiveSampler(space).select(candidates, never)
    measured = set(space.keys(first))

    replaced = AdaptiveSampler(space).select(candidates, measured.__contains__)
    assert len(replaced) == len(first)
    assert not measured & set(space.keys(replaced))
    assert len(set(space.keys(replaced))) == len(replaced)

    dropped = AdaptiveSampler(space, AdaptiveSamplingConfig(synthesis=False)).select(candidates, measured.__contains__)
    assert len(dropped) == 0


def test_invalid_representatives_are_replaced_by_valid_configs():
    space = make_space()
    candidates = clustered_candidates(space)
    first = AdaptiveSampler(space).select(candidates, never)
    invalid = set(space.keys(first[::2]))

    def is_valid(config):
        return space.key(config) not in invalid

    batch = AdaptiveSampler(space).select(candidates, never, is_valid)
    assert len(batch) == len(first) and all(is_valid(c) for c in batch)
    kept = AdaptiveSampler(space, AdaptiveSamplingConfig(synthesis=False)).select(candidates, never, is_valid)
    assert len(kept) == len(first) - len(invalid)


def test_representatives_and_synthesis_stay_inside_a_restricted_space():
    # The same invalid representatives, now outside the space's own restrictions: no check passed in.
    plain = make_space()
    candidates = clustered_candidates(plain)
    first = AdaptiveSampler(plain).select(candidates, never)
    outside = set(plain.keys(first[::2]))
    space = plain.restricted(np.array([c for c in np.ndindex(*DIMS) if c not in outside]))
    batch = AdaptiveSampler(space).select(candidates, never)
    assert len(batch) == len(first) and space.valid_mask(batch).all()
    # synthesis from members whose mode is outside redraws inside
    members = np.array([first[0]] * 3 + [first[1]])
    config = synthesize(members, space, set(), never, None, np.random.default_rng(0))
    assert config is not None and space.key(config) not in outside


def test_two_knob_clustering_uses_the_knobs_with_most_choices():
    space = make_space((4, 9, 3, 7))
    sampler = AdaptiveSampler(space, AdaptiveSamplingConfig(all_knobs=False))
    configs = space.sample(np.random.default_rng(0), 10)
    assert np.array_equal(sampler.features(configs), configs[:, [1, 3]])


def test_same_seed_same_batch():
    space = make_space()
    candidates = clustered_candidates(space)
    measured = set(space.keys(AdaptiveSampler(space).select(candidates, never)))
    runs = [AdaptiveSampler(space, seed=7).select(candidates, measured.__contains__) for _ in range(2)]
    assert np.array_equal(runs[0], runs[1])
