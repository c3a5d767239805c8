"""Stable-Baselines3 on the binding: PPO trained for a short budget on a bottleneck chain beats a
uniform random policy. Needs `pip install "./python[sb3]"` (torch: several GB); skipped without
it, so CI (which does not install torch) skips it; run it by hand after installing."""

import os

import numpy as np
import pytest

import scalesim

sb3 = pytest.importorskip("stable_baselines3")
contrib = pytest.importorskip("sb3_contrib")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHAIN = os.path.join(ROOT, "scenarios", "chain_5.yaml")


def _mean_episode_reward(env, act, episodes=3):
    total = 0.0
    for k in range(episodes):
        obs, _ = env.reset(options={"episode_seed": 1000 + k})
        done = False
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs, env))
            total += r
            done = term or trunc
    return total / episodes


def test_maskable_ppo_beats_random_on_a_chain():
    env = scalesim.make_env(CHAIN, flatten=True)
    model = contrib.MaskablePPO("MlpPolicy", env, n_steps=256, batch_size=64, seed=1, verbose=0)
    model.learn(total_timesteps=12_000)
    rng = np.random.default_rng(0)

    def trained(obs, e):
        a, _ = model.predict(obs, deterministic=True, action_masks=e.action_masks())
        return int(a)

    def random(obs, e):
        return int(rng.choice(np.flatnonzero(e.action_masks())))

    learned = _mean_episode_reward(env, trained)
    baseline = _mean_episode_reward(env, random)
    print(f"MaskablePPO {learned:.2f} vs random {baseline:.2f}")
    assert learned > baseline + 0.25 * abs(baseline)
