"""Chameleon's PPO agent: GAE by hand, and search quality on a known landscape."""

import numpy as np
import pytest

from chameleon_tune.search.ppo import PPOAgent, PPOConfig, compute_gae
from chameleon_tune.space import Knob, Space


def test_gae_matches_a_hand_computed_case():
    # One walker, three steps, ending with the third; gamma 0.5, lambda 0.5.
    rewards = np.array([[1.0], [2.0], [3.0]])
    values = np.array([[0.5], [1.0], [1.5]])
    dones = np.array([[0.0], [0.0], [1.0]])
    adv, ret = compute_gae(rewards, values, dones, last_value=np.array([100.0]), gamma=0.5, gae_lambda=0.5)
    d2 = 3.0 - 1.5  # terminal: no bootstrap from last_value
    d1 = 2.0 + 0.5 * 1.5 - 1.0
    d0 = 1.0 + 0.5 * 1.0 - 0.5
    a2 = d2
    a1 = d1 + 0.25 * a2
    a0 = d0 + 0.25 * a1
    np.testing.assert_allclose(adv[:, 0], [a0, a1, a2])
    np.testing.assert_allclose(ret, adv + values)


def test_gae_bootstraps_walks_cut_by_the_step_limit():
    adv, _ = compute_gae(np.array([[0.0]]), np.array([[0.0]]), np.array([[0.0]]), np.array([2.0]), 0.9, 0.99)
    assert adv[0, 0] == pytest.approx(0.9 * 2.0)


class _Noiseless:
    """A perfect cost model: the score is minus the squared distance to the optimum."""

    def __init__(self, optimum):
        self.optimum = np.asarray(optimum)

    def predict(self, configs):
        return -np.sum((np.atleast_2d(configs) - self.optimum) ** 2, axis=1).astype(np.float32)


@pytest.fixture
def landscape():
    dims = (20, 16, 12, 24, 10, 8, 30, 6)
    space = Space(tuple(Knob(f"k{i}", tuple(range(d))) for i, d in enumerate(dims)))
    return space, _Noiseless((13, 3, 9, 17, 2, 6, 21, 4))


def test_ppo_candidates_beat_as_many_random_samples(landscape):
    space, model = landscape
    agent = PPOAgent(space, seed=0, config=PPOConfig(n_walkers=64, max_steps=100))
    random_scores = model.predict(space.sample(np.random.default_rng(0), 64))
    for _iteration in range(5):
        found = agent.find_maximums(model, 64, exclude=set())
    assert len(found) == 64 and len({tuple(c) for c in found}) == 64
    ppo_scores = model.predict(found)
    assert np.median(ppo_scores) > np.max(random_scores)
    # and its best beats a random search with far more model evaluations
    assert ppo_scores.max() > model.predict(space.sample(np.random.default_rng(1), 5000)).max()


def test_ppo_excludes_measured_and_is_reproducible(landscape, tmp_path):
    space, model = landscape
    config = PPOConfig(n_walkers=32, max_steps=40)
    first = PPOAgent(space, seed=1, config=config).find_maximums(model, 16, exclude=set())
    again = PPOAgent(space, seed=1, config=config).find_maximums(model, 16, exclude=set())
    np.testing.assert_array_equal(first, again)
    excluded = set(space.keys(first[:8]))
    later = PPOAgent(space, seed=1, config=config).find_maximums(model, 16, exclude=excluded)
    assert not excluded & set(space.keys(later))


def test_policy_save_and_warm_start(landscape, tmp_path):
    space, model = landscape
    agent = PPOAgent(space, seed=0, config=PPOConfig(n_walkers=32, max_steps=40))
    agent.find_maximums(model, 8, exclude=set())
    path = str(tmp_path / "policy.pt")
    agent.save(path)
    warm = PPOAgent(space, seed=5)
    warm.load(path)
    for a, b in zip(agent.agent.parameters(), warm.agent.parameters()):
        assert bool((a == b).all())
    # one policy for every space: it loads on a space with other knobs, and another number of them
    knobs = (Knob("a", (0, 1)), Knob("tile", ((1, 8), (2, 4), (4, 2))), Knob("unroll", ("no", "yes")))
    other = PPOAgent(Space(knobs), seed=0)
    other.load(path)
    shared = dict(other.agent.named_parameters())
    for name, a in agent.agent.named_parameters():
        if name != "identity":  # each knob's identity belongs to its space
            assert bool((a == shared[name]).all())
    assert shared["identity"].shape[0] == 3
    assert len(other.find_maximums(_Noiseless((1, 2, 0)), 4, exclude=set())) == 4


def test_a_policy_of_the_per_space_architecture_is_refused(landscape, tmp_path):
    import torch

    space, _ = landscape
    path = str(tmp_path / "old.pt")
    torch.save({"n_knobs": space.n_knobs, "agent": {}, "optimizer": {}}, path)  # what earlier versions saved
    with pytest.raises(ValueError, match="older chameleon"):
        PPOAgent(space, seed=0).load(path)


def test_knob_tokens_describe_position_size_kind_and_value():
    from chameleon_tune.search.ppo import TOKEN_WIDTH, KnobTokens

    space = Space((Knob("n", (1, 3, 7)), Knob("tile", ((1, 2, 8), (4, 2, 2))), Knob("kind", ("a", "b"))))
    tokens = KnobTokens(space)(np.array([[2, 1, 0], [0, 0, 1]]))
    assert tokens.shape == (2, 3, TOKEN_WIDTH) and tokens.dtype == np.float32
    np.testing.assert_allclose(tokens[0, :, 0], [1.0, 1.0, 0.0])  # index / (choices - 1)
    np.testing.assert_allclose(tokens[0, :, 2:5], [[0, 1, 0], [1, 0, 0], [0, 0, 1]])  # kind: tiling, number, other
    np.testing.assert_allclose(tokens[0, 0, -1], 3 / 8)  # log2(1 + 7) / 8, right-aligned
    np.testing.assert_allclose(tokens[0, 1, -3:], np.log2([5, 3, 3]) / 8)  # innermost factor last
    assert not tokens[0, 2, 5:].any() and not np.array_equal(tokens[0], tokens[1])


def test_knobs_with_one_choice_do_not_end_walks():
    # Six knobs that cannot move: counted as stuck (6 of 8 >= 0.75), every walk would end at its first step.
    space = Space((Knob("a", tuple(range(30))), Knob("b", tuple(range(30))), *(Knob(f"fixed{i}", (1,)) for i in range(6))))
    agent = PPOAgent(space, seed=0, config=PPOConfig(n_walkers=16, max_steps=20))
    agent.find_maximums(_Noiseless((20, 20) + (0,) * 6), 8, exclude=set())
    assert agent.steps_taken > 3 * agent.config.rollouts
