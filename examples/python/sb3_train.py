"""Train sb3-contrib's MaskablePPO on a scalesim environment and compare it with the HPA.

    pip install "./python[sb3]"          # stable-baselines3, sb3-contrib (and torch)
    python examples/python/sb3_train.py  # from the project root

Trains on Online Boutique peak at fluid fidelity with random load shapes, then runs the greedy
policy and a uniform random one on the rush shape (never trained on) and prints their SLO
violation and cost per step.
"""

import numpy as np
from sb3_contrib import MaskablePPO

import scalesim

train_env = scalesim.make_env(
    "scenarios/online_boutique_peak.yaml", flatten=True, random_shapes=True, rate_scale=(0.8, 1.2)
)
model = MaskablePPO("MlpPolicy", train_env, n_steps=512, batch_size=128, seed=1, verbose=1)
model.learn(total_timesteps=50_000)

test_env = scalesim.make_env("scenarios/online_boutique_rush.yaml", flatten=True)
rng = np.random.default_rng(0)
for name in ("maskable-ppo", "random"):
    obs, _ = test_env.reset(options={"episode_seed": 1})
    slo, cost, done = [], [], False
    while not done:
        if name == "random":
            action = int(rng.choice(np.flatnonzero(test_env.action_masks())))
        else:
            action, _ = model.predict(obs, deterministic=True, action_masks=test_env.action_masks())
        obs, reward, terminated, truncated, info = test_env.step(action)
        slo.append(info["slo_violation"])
        cost.append(info["cost"])
        done = terminated or truncated
    print(f"{name:>13}: SLO violation {100 * np.mean(slo):.1f}% of requests, mean replicas/max {np.mean(cost):.3f}")
