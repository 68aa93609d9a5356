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


def test_json_round_trip(space):
    again = Space.from_json(space.to_json())
    assert again == space
    assert again.choices_of([1, 0, 1, 2]) == {"sketch": 1, "a": 1, "b": (2, 2), "only1": 2}
