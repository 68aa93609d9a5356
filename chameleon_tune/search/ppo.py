"""Chameleon's reinforcement-learning search agent: PPO over the cost model.

Read beside Section 4.1 of the paper (Ahn et al., ICLR 2020). The environment
is the knob space with the cost model as reward:

- state: the configuration, each knob described by its index divided by its number of
  choices (the paper's state) and by what the knob is (its number of choices, its kind, the
  log2 of the chosen value or tile factors): one token per knob;
- action: for every knob at once, one of {decrement, stay, increment};
- reward: the cost model's predicted score of the configuration reached;
- a walk ends early when most knobs that can move are stuck (chose "stay" or sit at a
  bound; in a restricted space the restrictions are bounds too, see ``Space.step``).

Many walkers step in lockstep, so each step is one batched policy call and one
batched cost-model call. The policy persists across the iterations of a task.

The paper's policy is an MLP from the whole state to three logits per knob, so it
fits only spaces with exactly as many knobs. Here the same weights score every knob:
each token is embedded alone, the embeddings are averaged into a summary of the
whole configuration (a Deep Sets encoder, Zaheer et al., NeurIPS 2017), and a knob's
three logits come from its own embedding beside that summary; the value from the
summary alone. Knobs alike in description (two loops of one extent) still need to move
apart, so each knob also has a small learned identity vector in its token: the only
weights tied to one space. A policy saved on any task warm-starts any other
(``tune --warm-start``, and ``tune-model`` from task to task): the shared weights carry
over, and the identities too where the knobs are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cost_model import XGBoostCostModel
from ..space import Config, Space
from .base import PolicyError
from .model_based import TopK

DECREMENT, STAY, INCREMENT = 0, 1, 2


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters; names as in the paper and CleanRL."""

    n_walkers: int = 128
    """Walkers (parallel episodes) per rollout, each from a random start."""
    rollouts: int = 2
    """Rollout-then-update rounds per search (the top list spans all of them)."""
    max_steps: int = 100
    """Maximum steps of one walk (paper: 500; see BENCHMARKS.md for why 100)."""
    stuck_fraction: float = 0.75
    """A walk ends when at least this share of the knobs that can move is stuck."""
    hidden: int = 20
    """Width of the hidden layers (policy: 2 layers, value: 3 layers)."""
    learning_rate: float = 1e-3
    """Adam step size."""
    update_epochs: int = 3
    """Passes over the rollout per update."""
    minibatch_size: int = 256
    """Samples per gradient step (paper: 32; see ``max_update_samples``)."""
    max_update_samples: int = 8192
    """Rollout samples used per update, drawn at random: bounds the update's cost."""
    gamma: float = 0.9
    """Discount factor."""
    gae_lambda: float = 0.99
    """GAE lambda."""
    clip_coef: float = 0.2
    """PPO surrogate clipping."""
    vf_coef: float = 1.0
    """Value-loss weight."""
    ent_coef: float = 0.05
    """Entropy bonus weight (paper: 0.3, which kept the policy near uniform here)."""
    norm_adv: bool = True
    """Normalize advantages per minibatch."""
    norm_reward: bool = True
    """Standardize rewards by the scores of the walk's random starts (cost-model scales drift)."""


# ---------------------------------------------------------------------------
# The algorithm
# ---------------------------------------------------------------------------
def compute_gae(
    rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_value: np.ndarray, gamma: float, gae_lambda: float
) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation over ``(T, W)`` arrays; returns (advantages, returns).

    ``dones[t]`` is 1 where the walk ended with step ``t`` (nothing follows it);
    ``last_value`` bootstraps walks still going after the last step.
    """
    T = len(rewards)
    advantages = np.zeros_like(rewards)
    running = np.zeros_like(last_value)
    for t in reversed(range(T)):
        next_value = last_value if t == T - 1 else values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        running = delta + gamma * gae_lambda * not_done * running
        advantages[t] = running
    return advantages, advantages + values


#: Tile factors (innermost last) or values a token describes; a longer tiling keeps its inner ones.
TOKEN_VALUES = 4
#: Width of a knob's token: position, log2 of the choice count, kind (3), values.
TOKEN_WIDTH = 5 + TOKEN_VALUES
#: Width of each knob's learned identity (see ``_agent``).
IDENTITY_WIDTH = 4
POLICY_ARCHITECTURE = "per-knob tokens and identities, mean-pooled"
"""Saved with the policy: a policy of another architecture (the paper's per-space MLP) does not load."""


class KnobTokens:
    """Every choice of every knob of a space as a token (``TOKEN_WIDTH`` numbers), in one table,
    so the tokens of a batch of configurations are one gather."""

    def __init__(self, space: Space) -> None:
        rows = []
        for knob in space.knobs:
            n = len(knob)
            values = knob.features()  # log2 of numbers or of tile factors; (n, 0) for anything else
            kind = [values.shape[1] > 1, values.shape[1] == 1, values.shape[1] == 0]
            table = np.zeros((n, TOKEN_WIDTH), dtype=np.float32)
            table[:, 0] = np.arange(n) / max(n - 1, 1)
            table[:, 1] = np.log2(n) / 8.0
            table[:, 2:5] = kind
            kept = values[:, -TOKEN_VALUES:] / 8.0  # innermost factors last, right-aligned
            table[:, TOKEN_WIDTH - kept.shape[1] :] = kept
            rows.append(table)
        self.table = np.concatenate(rows)
        self.offsets = np.concatenate([[0], np.cumsum(space.dims)[:-1]]).astype(np.int64)

    def __call__(self, configs: np.ndarray) -> np.ndarray:
        """``(n, n_knobs, TOKEN_WIDTH)`` float32 tokens of ``(n, n_knobs)`` configurations."""
        return self.table[np.asarray(configs, dtype=np.int64) + self.offsets]


def _agent(n_knobs: int, hidden: int):
    import torch
    from torch import nn

    class Agent(nn.Module):
        """Policy: one shared scorer of each knob's 3 moves. Value: an MLP on the pooled state."""

        def __init__(self) -> None:
            super().__init__()
            # Learned per knob of this space: lets knobs alike in description move apart. The
            # only weights that do not transfer; a new space starts them afresh.
            self.identity = nn.Parameter(0.1 * torch.randn(n_knobs, IDENTITY_WIDTH))
            self.embed = nn.Sequential(
                nn.Linear(TOKEN_WIDTH + IDENTITY_WIDTH, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
            )
            self.actor = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 3))
            self.critic = nn.Sequential(
                nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)
            )

        def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            identity = self.identity.unsqueeze(0).expand(x.shape[0], -1, -1)
            knobs = self.embed(torch.cat([x, identity], dim=-1))  # (batch, n_knobs, hidden)
            return knobs, knobs.mean(dim=1)

        def get_value(self, x: torch.Tensor) -> torch.Tensor:
            return self.critic(self._encode(x)[1]).squeeze(-1)

        def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None, generator=None):
            knobs, pooled = self._encode(x)
            logits = self.actor(torch.cat([knobs, pooled.unsqueeze(1).expand_as(knobs)], dim=-1))
            log_probs = torch.log_softmax(logits, dim=-1)  # (batch, n_knobs, 3)
            if action is None:
                flat = log_probs.exp().view(-1, 3)
                action = torch.multinomial(flat, 1, generator=generator).view(log_probs.shape[:2])
            logprob = log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1).sum(-1)
            entropy = -(log_probs.exp() * log_probs).sum(-1).sum(-1)
            return action, logprob, entropy, self.critic(pooled).squeeze(-1)

    return Agent()


class PPOAgent:
    """Finds configurations the cost model scores highly, learning where to walk."""

    def __init__(self, space: Space, seed: int = 0, config: PPOConfig = PPOConfig()) -> None:
        import torch

        self.space = space
        self.config = config
        self.rng = np.random.default_rng(seed)
        # A 20-wide MLP is slower on several threads than on one.
        torch.set_num_threads(1)
        torch.manual_seed(seed)  # network initialization
        self.generator = torch.Generator().manual_seed(seed)
        self.tokens = KnobTokens(space)
        self.agent = _agent(space.n_knobs, config.hidden)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=config.learning_rate, eps=1e-5)
        self.steps_taken = 0

    # -- rollout ------------------------------------------------------------------
    def find_maximums(self, model: XGBoostCostModel, n: int, exclude: set[Config]) -> np.ndarray:
        """Walk and learn for a few rounds; the ``n`` best-predicted unmeasured configurations seen."""
        top = TopK(self.space, n, exclude)
        for _round in range(self.config.rollouts):
            self._learn(*self._rollout(model, top))
        return top.best()

    def _rollout(self, model: XGBoostCostModel, top: TopK):
        """All walkers step in lockstep until each is stuck or the step limit is reached."""
        import torch

        cfg, space = self.config, self.space
        W = cfg.n_walkers
        configs = space.sample(self.rng, W)
        start_scores = model.predict(configs)
        top.offer(configs, start_scores)
        # The model's scale is arbitrary (rank loss) and changes at every refit;
        # rewards in standard units keep the value targets and step sizes sane.
        shift, scale = (float(np.mean(start_scores)), float(np.std(start_scores)) + 1e-8) if cfg.norm_reward else (0.0, 1.0)
        obs_l, act_l, logp_l, val_l, rew_l, done_l, live_l = [], [], [], [], [], [], []
        live = np.ones(W, dtype=bool)
        # A knob with one choice can never move; counted as stuck, it would end walks sooner
        # the more such knobs a space lists (unless no knob can move at all).
        movable = space.dims > 1 if np.any(space.dims > 1) else np.ones(space.n_knobs, dtype=bool)
        for _step in range(cfg.max_steps):
            obs = torch.from_numpy(self.tokens(configs))
            with torch.no_grad():
                action, logprob, _, value = self.agent.get_action_and_value(obs, generator=self.generator)
            action = action.numpy()
            moved = space.step(configs, action - STAY, self.rng)
            stuck = (action == STAY) | (moved == configs)
            done = stuck[:, movable].mean(axis=1) >= cfg.stuck_fraction
            reward = np.zeros(W, dtype=np.float32)
            scores = model.predict(moved[live])
            top.offer(moved[live], scores)
            reward[live] = (scores - shift) / scale
            obs_l.append(obs)
            act_l.append(torch.from_numpy(action))
            logp_l.append(logprob)
            val_l.append(value.numpy())
            rew_l.append(reward)
            done_l.append(done.astype(np.float32))
            live_l.append(live.copy())
            configs = moved
            live = live & ~done
            if not live.any():
                break
        self.steps_taken += len(obs_l)
        with torch.no_grad():
            last_value = self.agent.get_value(torch.from_numpy(self.tokens(configs))).numpy()
        return obs_l, act_l, logp_l, np.array(val_l), np.array(rew_l), np.array(done_l), np.array(live_l), last_value

    # -- PPO update ---------------------------------------------------------------
    def _learn(self, obs_l, act_l, logp_l, values, rewards, dones, live, last_value) -> None:
        import torch

        cfg = self.config
        advantages, returns = compute_gae(rewards, values, dones, last_value, cfg.gamma, cfg.gae_lambda)
        mask = live.reshape(-1)  # steps taken after a walk ended are not experience
        b_obs = torch.cat(obs_l)[mask]
        b_act = torch.cat(act_l)[mask]
        b_logp = torch.cat(logp_l)[mask]
        b_adv = torch.from_numpy(advantages.reshape(-1)[mask])
        b_ret = torch.from_numpy(returns.reshape(-1)[mask])
        n = min(len(b_obs), cfg.max_update_samples)
        for _epoch in range(cfg.update_epochs):
            order = torch.from_numpy(self.rng.permutation(len(b_obs))[:n])
            for start in range(0, n, cfg.minibatch_size):
                idx = order[start : start + cfg.minibatch_size]
                _, new_logp, entropy, new_value = self.agent.get_action_and_value(b_obs[idx], b_act[idx])
                ratio = (new_logp - b_logp[idx]).exp()
                adv = b_adv[idx]
                if cfg.norm_adv and len(idx) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
                v_loss = 0.5 * ((new_value - b_ret[idx]) ** 2).mean()
                loss = pg_loss - cfg.ent_coef * entropy.mean() + cfg.vf_coef * v_loss
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()

    # -- persistence --------------------------------------------------------------
    def save(self, path: str) -> None:
        import torch

        state = {"architecture": POLICY_ARCHITECTURE, "hidden": self.config.hidden, "knobs": self.space.names}
        torch.save({**state, "agent": self.agent.state_dict(), "optimizer": self.optimizer.state_dict()}, path)

    def load(self, path: str) -> None:
        """Warm-start from a policy saved on this or any other task, whatever its number of knobs."""
        import torch

        try:
            state = torch.load(path, weights_only=True)
            architecture = state.get("architecture")
        except Exception as exc:  # noqa: BLE001 - pickle, zip and key errors all mean the same
            raise PolicyError(f"{path} is not a policy saved by chameleon ({type(exc).__name__})") from None
        if architecture != POLICY_ARCHITECTURE:
            raise PolicyError(f"policy {path} was saved by an older chameleon (one network per knob count); tune afresh")
        try:
            weights = dict(state["agent"])
            if state["knobs"] == self.space.names:
                self.agent.load_state_dict(weights)
                self.optimizer.load_state_dict(state["optimizer"])
            else:  # another space: the shared weights carry over, each knob's identity starts afresh
                weights.pop("identity")
                missing = self.agent.load_state_dict(weights, strict=False).missing_keys
                if missing != ["identity"]:
                    raise KeyError(f"missing {missing}")
        except (KeyError, RuntimeError, ValueError) as exc:
            raise PolicyError(f"policy {path} does not fit this agent: {str(exc).splitlines()[0]}") from None
