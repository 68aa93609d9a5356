import numpy as np
import pytest

from chameleon_tune.space import Knob, Space, perfect_tilings


def test_perfect_tiling_counts():
    # 56 = 2^3 * 7: C(6,3) * C(4,3) = 20 * 4 ordered 4-way factorizations
    assert len(perfect_tilings(56, 4, 64)) == 80
    # 64 = 2^6: C(9,3) = 84, none has an innermost factor above 64
    assert len(perfect_tilings(64, 4, 64)) == 84
    # 128 = 2^7: C(10,3) = 120, minus (1,1,1,128) whose innermost 128 > 64
    assert len(perfect_tilings(128, 4, 64)) == 119
    assert len(perfect_tilings(3, 2)) == 2


def test_perfect_tilings_are_products_and_ordered_innermost_first():
    tilings = perfect_tilings(56, 4, 16)
    assert all(np.prod(t) == 56 and t[-1] <= 16 for t in tilings)
    assert len(set(tilings)) == len(tilings)
    inner = [t[-1] for t in tilings]
    assert inner == sorted(inner)  # neighbours share the innermost (vector) tile


@pytest.fixture
def space():
    return Space(
        (Knob("sketch", (0, 1)), Knob("a", (1, 2, 4, 8)), Knob("b", ((1, 4), (2, 2), (4, 1))), Knob("only1", (0, 1, 2))),
        conditions={3: (0, 1)},
    )


def test_sample_is_canonical_and_in_range(space):
    configs = space.sample(np.random.default_rng(0), 500)
    assert configs.shape == (500, 4)
    assert np.all(configs >= 0) and np.all(configs < space.dims)
    # knob 3 only matters in sketch 1: it is 0 elsewhere
    assert np.all(configs[configs[:, 0] == 0, 3] == 0)
    assert len({tuple(c) for c in configs[configs[:, 0] == 1]}) > 10


def test_neighbours_differ_by_one_step(space):
    n = space.neighbours([1, 2, 1, 1])
    assert len(n) == 7  # sketch->0 collapses knob 3; a:+-1, b:+-1, only1:+-1
    for config in n:
        assert np.abs(np.asarray(config) - [1, 2, 1, 1]).sum() >= 1
    assert {tuple(c) for c in n} >= {(1, 3, 1, 1), (1, 1, 1, 1), (1, 2, 0, 1), (1, 2, 2, 1), (1, 2, 1, 0), (1, 2, 1, 2)}


def test_random_neighbour_changes_exactly_one_knob():
    space = Space((Knob("a", tuple(range(5))), Knob("b", tuple(range(3))), Knob("fixed", (7,))))
    rng = np.random.default_rng(1)
    configs = space.sample(rng, 200)
    moved = space.random_neighbour(configs, rng)
    assert np.all((moved != configs).sum(axis=1) == 1)


def test_features_and_keys(space):
    configs = np.array([[0, 3, 2, 2], [1, 3, 2, 2]])
    features = space.features(configs)
    # 4 normalized indices + log2 features of a (1), b (2), sketch (1), only1 (1)
    assert features.shape == (2, 4 + 1 + 2 + 1 + 1)
    assert space.key(configs[0]) == (0, 3, 2, 0)
    assert space.key(configs[1]) == (1, 3, 2, 2)
    assert space.size == 2 * 4 * 3 * 3


def test_choices_without_a_value_are_described_by_their_index_alone():
    assert Knob("flag", (True, False)).features().shape == (2, 0)  # booleans are not numbers
    assert Knob("layout", ("NCHW", "NHWC")).features().shape == (2, 0)


def test_json_round_trip(space):
    again = Space.from_json(space.to_json())
    assert again == space
    assert again.choices_of([1, 0, 1, 2]) == {"sketch": 1, "a": 1, "b": (2, 2), "only1": 2}


# -- restrictions known up front ---------------------------------------------------
@pytest.fixture
def restricted():
    """A 6x5x4 product where only configurations with a + b even and c != 3 exist."""
    plain = Space((Knob("a", tuple(range(6))), Knob("b", tuple(range(5))), Knob("c", tuple(range(4)))))
    grid = np.array(list(np.ndindex(6, 5, 4)))
    return plain.restricted(grid[((grid[:, 0] + grid[:, 1]) % 2 == 0) & (grid[:, 2] != 3)])


def _inside(configs):
    configs = np.atleast_2d(configs)
    return ((configs[:, 0] + configs[:, 1]) % 2 == 0) & (configs[:, 2] != 3)


def test_restricted_sampling_draws_only_valid_configurations_uniformly(restricted):
    configs = restricted.sample(np.random.default_rng(0), 9000)
    assert _inside(configs).all()
    counts = np.unique(configs, axis=0, return_counts=True)[1]
    assert len(counts) == len(restricted.valid) == 45 and counts.min() > 100  # 200 expected each
    assert restricted.valid_mask(np.array([[0, 0, 0], [0, 1, 0], [2, 2, 3]])).tolist() == [True, False, False]


def test_restricted_moves_stay_inside(restricted):
    rng = np.random.default_rng(1)
    configs = restricted.sample(rng, 500)
    moved = restricted.random_neighbour(configs, rng)
    assert _inside(moved).all()
    # a one-knob move inside exists from everywhere here (c can change), so every row moved
    assert np.all((moved != configs).sum(axis=1) == 1)
    stepped = restricted.step(configs, rng.integers(-1, 2, size=configs.shape), rng)
    assert _inside(stepped).all() and np.all(np.abs(stepped - configs) <= 1)
    assert all(_inside(n).all() for n in restricted.neighbours([2, 2, 1]))
    assert {tuple(n) for n in restricted.neighbours([2, 2, 1])} == {(2, 2, 0), (2, 2, 2)}


def test_a_blocked_step_keeps_the_knob_moves_that_stay_inside(restricted):
    # (0,0,2) + (1,0,1): the whole move, a alone and c alone all leave the space: no move
    assert restricted.step(np.array([[0, 0, 2]]), np.array([[1, 0, 1]]), np.random.default_rng(0)).tolist() == [[0, 0, 2]]
    # (0,0,1) + (1,0,1): the whole move and a alone leave it, c alone stays inside
    assert restricted.step(np.array([[0, 0, 1]]), np.array([[1, 0, 1]]), np.random.default_rng(0)).tolist() == [[0, 0, 2]]
    # a valid whole move is made as it is
    assert restricted.step(np.array([[0, 0, 1]]), np.array([[1, 1, 1]]), np.random.default_rng(0)).tolist() == [[1, 1, 2]]


def test_restricted_walk_json_and_equality(restricted):
    walk = np.array(list(restricted.configurations()))
    assert len(walk) == 45 and _inside(walk).all()
    assert [tuple(c) for c in walk] == sorted(tuple(c) for c in walk)  # index order
    again = Space.from_json(restricted.to_json())
    assert again == restricted and again != Space(restricted.knobs)


def test_a_restriction_that_excludes_nothing_is_none():
    plain = Space((Knob("a", (1, 2, 3)), Knob("b", (0, 1))))
    assert plain.restricted(np.array(list(np.ndindex(3, 2)))).valid is None


def test_restricting_needs_a_valid_configuration():
    with pytest.raises(ValueError, match="at least one valid"):
        Space((Knob("a", (1, 2)),)).restricted(np.zeros((0, 1), dtype=np.int64))


def test_a_large_restricted_space_stays_fast():
    import time

    # 30 million configurations, 50 thousand of them valid
    space = Space(tuple(Knob(f"k{i}", tuple(range(d))) for i, d in enumerate((30, 20, 10, 10, 10, 5))))
    rng = np.random.default_rng(0)
    valid = np.unique(space.sample(rng, 50_000), axis=0)
    start = time.perf_counter()
    restricted = space.restricted(valid)
    configs = restricted.sample(rng, 20_000)
    moved = restricted.random_neighbour(configs, rng)
    stepped = restricted.step(configs, rng.integers(-1, 2, size=configs.shape), rng)
    assert restricted.valid_mask(np.concatenate([configs, moved, stepped])).all()
    assert time.perf_counter() - start < 2.0  # about 0.1 s; rejection sampling would need ~600 draws a row
