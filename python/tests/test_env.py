"""The gymnasium binding: API conformance, determinism against the Rust environment, masks,
vector autoreset, errors, runs. Run from the project root: ``pytest python/tests``."""

import os
import subprocess

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import scalesim

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PEAK = os.path.join(ROOT, "scenarios", "online_boutique_peak.yaml")
CHAIN = os.path.join(ROOT, "scenarios", "chain_5.yaml")


@pytest.mark.parametrize("action", ["single", "per_service"])
@pytest.mark.parametrize("flatten", [False, True])
def test_env_checker_passes(action, flatten):
    env = scalesim.make_env(PEAK, action=action, flatten=flatten)
    assert isinstance(env, gym.Env)
    check_env(env, skip_render_check=True)
    if action == "single":
        assert env.action_space == gym.spaces.Discrete(11 * 5)
    else:
        assert env.action_space == gym.spaces.MultiDiscrete([5] * 11)


def _trajectory(seed, n=30, action="single", **kw):
    env = scalesim.make_env(PEAK, action=action, **kw)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(123)
    out = [obs["services"].copy()]
    rewards = []
    for _ in range(n):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        out.append(obs["services"].copy())
        rewards.append(r)
        if term or trunc:
            env.reset()
    return out, rewards


def test_same_seed_same_trajectory_and_another_seed_another():
    a_obs, a_rew = _trajectory(7)
    b_obs, b_rew = _trajectory(7)
    assert a_rew == b_rew
    assert all(np.array_equal(x, y) for x, y in zip(a_obs, b_obs))
    # The fluid model draws nothing from the seed (issue 18, item 9); request fidelity does.
    _, c_rew = _trajectory(7, n=5, fidelity="request")
    _, d_rew = _trajectory(8, n=5, fidelity="request")
    assert c_rew != d_rew


def _rust_trajectory(episode_seed, mode, actions):
    exe = os.path.join(ROOT, "target", "release", "examples", "env_trajectory")
    if not os.path.exists(exe):
        subprocess.run(["cargo", "build", "--release", "--example", "env_trajectory", "-q"], cwd=ROOT, check=True)
    text = ";".join(",".join(str(int(x)) for x in np.atleast_1d(a)) for a in actions)
    out = subprocess.run([exe, PEAK, str(episode_seed), mode, text], capture_output=True, text=True, check=True)
    rows = []
    for line in out.stdout.splitlines():
        reward, obs = line.split("\t")
        rows.append((float(reward) if reward else None, np.array([float(x) for x in obs.split(",")], np.float32)))
    return rows


@pytest.mark.parametrize("mode", ["single", "per_service"])
def test_observations_and_rewards_equal_the_rust_environment(mode):
    env = scalesim.make_env(PEAK, action=mode, flatten=True)
    obs, info = env.reset(options={"episode_seed": 41})
    assert info["episode_seed"] == 41
    env.action_space.seed(5)
    actions = [env.action_space.sample() for _ in range(25)]
    rust = _rust_trajectory(41, mode, actions)
    assert np.array_equal(obs, rust[0][1])
    for k, a in enumerate(actions):
        obs, r, term, trunc, _ = env.step(a)
        assert r == rust[k + 1][0], f"step {k}: {r} vs {rust[k + 1][0]}"
        assert np.array_equal(obs, rust[k + 1][1]), f"step {k}"


def test_an_agent_config_gives_the_environment_its_training_steps_in():
    # The bundled GAT's config: per-service actions, HPA floor and ceiling, a 300 s scale-down
    # window, 1 s fluid ticks, its reward weights and random load shapes with second-scale bursts.
    # Stepped from Python, the observations and rewards equal those of the environment
    # `scalesim train --agent` builds in Rust for the same episode seed and actions.
    gat = os.path.join(ROOT, "configs", "agents", "gat_ppo.yaml")
    env = scalesim.make_env(PEAK, agent_config=gat, flatten=True)
    assert env.action_space == gym.spaces.MultiDiscrete([5] * 11)
    obs, _ = env.reset(options={"episode_seed": 41})
    env.action_space.seed(5)
    actions = [env.action_space.sample() for _ in range(25)]
    rust = _rust_trajectory(41, "agent:" + gat, actions)
    assert np.array_equal(obs, rust[0][1])
    for k, a in enumerate(actions):
        obs, r, _, _, _ = env.step(a)
        assert r == rust[k + 1][0], f"step {k}: {r} vs {rust[k + 1][0]}"
        assert np.array_equal(obs, rust[k + 1][1]), f"step {k}"
    # The plain environment of the same actions differs (another reward, no shields).
    plain = scalesim.make_env(PEAK, action="per_service", flatten=True)
    plain.reset(options={"episode_seed": 41})
    assert plain.step(actions[0])[1] != rust[1][0]
    venv = scalesim.make_vec_env(PEAK, 2, agent_config=gat)
    assert venv.single_action_space == gym.spaces.MultiDiscrete([5] * 11)
    # Beside an agent config, environment keywords are refused by name; so are configs whose
    # actions are more than replica deltas.
    with pytest.raises(ValueError, match="hpa_floor, reward"):
        scalesim.make_env(PEAK, agent_config=gat, reward="cost", hpa_floor=1.0)
    with pytest.raises(ValueError, match="random_shapes"):
        scalesim.make_vec_env(PEAK, 2, agent_config=gat, random_shapes=True)
    full = os.path.join(ROOT, "configs", "agents", "gat_ppo_full_action.yaml")
    with pytest.raises(ValueError, match="gat_ppo_full_action.yaml.*node_type_head"):
        scalesim.make_env(PEAK, agent_config=full)


def test_masks_follow_the_replica_bounds():
    env = scalesim.make_env(PEAK)
    env.reset(seed=1)
    mask = env.action_masks()
    assert mask.shape == (55,) and mask.dtype == bool
    # Every service starts at its minimum of one replica: -2 and -1 masked, 0, +1, +2 allowed.
    assert np.array_equal(mask.reshape(11, 5), np.tile([False, False, True, True, True], (11, 1)))
    # A masked action is not executed: it is reported as blocked.
    _, _, _, _, info = env.step(0)
    assert info["replicas"]["frontend"] == 1 and info["blocked"] != ""
    _, _, _, _, info = env.step(4)  # frontend +2
    assert info["replicas"]["frontend"] == 3


def test_info_carries_the_steps_metrics():
    env = scalesim.make_env(PEAK)
    env.reset(seed=3)
    _, reward, _, _, info = env.step(27)
    assert 0.0 <= info["slo_violation"] <= 1.0 and 0.0 < info["cost"] <= 1.0
    assert set(info["replicas"]) == set(env.service_names) and len(env.service_names) == 11
    assert info["time_s"] == 15.0


def test_vector_env_autoresets_on_the_next_step():
    v = scalesim.make_vec_env(PEAK, 4)
    obs, _ = v.reset(seed=2)
    assert obs["services"].shape == (4, 11, 12)
    steps = 0
    while True:
        obs, rew, term, trunc, info = v.step(np.full(4, 27))
        steps += 1
        if trunc.any():
            break
    assert steps == 60 and trunc.all() and not term.any()  # 900 s at 15 s decisions
    obs, rew, term, trunc, info = v.step(np.full(4, 27))
    # The step after the end resets: reward 0, no flags, a fresh episode's first observation.
    assert (rew == 0).all() and not term.any() and not trunc.any()
    fresh = scalesim.make_env(PEAK)
    first, _ = fresh.reset(options={"episode_seed": v._seed_of(0, 1)})
    assert np.array_equal(obs["services"][0], first["services"])
    obs, rew, term, trunc, info = v.step(np.full(4, 27))
    assert (rew != 0).all()
    assert v.action_masks().shape == (4, 55)


def test_vector_env_matches_single_environments():
    v = scalesim.make_vec_env(PEAK, 3, action="per_service")
    v.reset(seed=9)
    singles = [scalesim.make_env(PEAK, action="per_service") for _ in range(3)]
    for i, e in enumerate(singles):
        e.reset(options={"episode_seed": v._seed_of(i, 0)})
    rng = np.random.default_rng(0)
    for _ in range(10):
        acts = rng.integers(0, 5, size=(3, 11))
        vo, vr, _, _, _ = v.step(acts)
        for i, e in enumerate(singles):
            o, r, _, _, _ = e.step(acts[i])
            assert r == vr[i]
            assert np.array_equal(o["services"], vo["services"][i])


def test_credit_per_service_splits_the_reward_among_the_services():
    env = scalesim.make_env(PEAK, action="per_service", credit="per_service")
    env.reset(options={"episode_seed": 4})
    v = scalesim.make_vec_env(PEAK, 2, action="per_service", credit="per_service")
    v.reset(seed=4)
    single = scalesim.make_env(PEAK, action="per_service", credit="per_service")
    single.reset(options={"episode_seed": v._seed_of(1, 0)})
    hold = np.full(11, 2)
    grow = hold.copy()
    grow[0] = 4  # the frontend +2, every other service holds
    for act in (grow, hold, hold):
        _, reward, _, _, info = env.step(act)
        split = info["service_rewards"]
        assert list(split) == env.service_names
        # The parts add up to the reward, and are each service's own (not equal shares).
        assert sum(split.values()) == pytest.approx(reward, abs=1e-9)
        assert max(split.values()) - min(split.values()) > 1e-6
        _, vr, _, _, vinfo = v.step(np.stack([act, act]))
        _, r1, _, _, info1 = single.step(act)
        assert vinfo["service_rewards"].shape == (2, 11)
        assert np.array_equal(vinfo["service_rewards"][1], np.array(list(info1["service_rewards"].values())))
        assert vinfo["service_rewards"][1].sum() == pytest.approx(vr[1], abs=1e-9)
    # The frontend's two new replicas are charged to the frontend: its part is the lowest.
    assert min(split, key=split.get) == "frontend"
    # The shared reward carries no split; a split needs a decision per service.
    shared = scalesim.make_env(PEAK)
    shared.reset(seed=1)
    assert "service_rewards" not in shared.step(27)[4]
    with pytest.raises(ValueError, match="credit"):
        scalesim.make_env(PEAK, credit="per_service")
    with pytest.raises(ValueError, match="credit"):
        scalesim.make_env(PEAK, action="per_service", credit="mine")


def test_bursty_arrivals_raise_the_observed_latency():
    # The same episode and actions, Poisson arrivals against gamma gaps of cv 3: the services'
    # p95 latency feature (index 6) is higher with bursty arrivals at every step.
    def p95s(**kw):
        env = scalesim.make_env(PEAK, action="per_service", **kw)
        env.reset(options={"episode_seed": 5})
        return [env.step(np.full(11, 2))[0]["services"][:, 6].sum() for _ in range(4)]

    plain, bursty = p95s(), p95s(arrival_cv=(3, 3))
    assert all(b > p for p, b in zip(plain, bursty)), (plain, bursty)
    with pytest.raises(ValueError, match="arrival_cv"):
        scalesim.make_env(PEAK, arrival_cv=(3, 1))


def test_the_hpa_anchor_moves_services_on_the_hold_action():
    # Holding every service (delta index 2) keeps the replicas where they are from the current
    # count, and follows the HPA's recommendations from the HPA's: on peak it scales up.
    def replicas_after_holds(anchor):
        env = scalesim.make_env(PEAK, action="per_service", anchor=anchor)
        env.reset(options={"episode_seed": 5})
        first = None
        for _ in range(8):
            info = env.step(np.full(11, 2))[4]
            first = first or dict(info["replicas"])
        return first, info["replicas"]

    first, last = replicas_after_holds("current")
    assert last == first
    first, last = replicas_after_holds("hpa")
    assert sum(last.values()) > sum(first.values()), (first, last)
    with pytest.raises(ValueError, match="anchor"):
        scalesim.make_env(PEAK, anchor="hpa")
    with pytest.raises(ValueError, match="anchor"):
        scalesim.make_env(PEAK, action="per_service", anchor="sideways")


def test_scenarios_of_other_graphs_in_one_environment_are_refused_when_an_episode_draws_one():
    # Online Boutique (11 services) and a chain of 5: the first episode decides the spaces, and an
    # episode drawn on the other graph is refused by name, in both environments.
    env = scalesim.make_env([PEAK, CHAIN])
    with pytest.raises(ValueError, match="must share a graph shape"):
        for seed in range(40):
            env.reset(options={"episode_seed": seed})
    venv = scalesim.make_vec_env([PEAK, CHAIN], 8)
    with pytest.raises(ValueError, match="must share a graph shape"):
        for seed in range(5):
            venv.reset(seed=seed)


def test_bad_input_raises_with_the_file_and_field():
    with pytest.raises(ValueError, match="does_not_exist.yaml"):
        scalesim.make_env("scenarios/does_not_exist.yaml")
    with pytest.raises(ValueError, match="fidelity"):
        scalesim.make_env(PEAK, fidelity="quantum")
    with pytest.raises(ValueError, match="reward_weights"):
        scalesim.make_env(PEAK, reward_weights={"nonsense": 1.0})
    with pytest.raises(TypeError, match="unknown keyword"):
        scalesim.make_env(PEAK, rate_scael=(1, 2))
    env = scalesim.make_env(PEAK)
    env.reset(seed=1)
    with pytest.raises(ValueError, match="outside"):
        env.step(55)
    per = scalesim.make_env(PEAK, action="per_service")
    per.reset(seed=1)
    with pytest.raises(ValueError, match="outside"):
        per.step([7] * 11)
    with pytest.raises(ValueError, match="one entry per service"):
        per.step([2] * 3)
    bad = os.path.join(os.path.dirname(__file__), "bad.yaml")
    try:
        with open(bad, "w") as f:
            f.write(open(PEAK).read().replace("slo_ms: 250", "slo_ms: -5"))
        with pytest.raises(ValueError, match="slo_ms"):
            scalesim.make_env(bad)
    finally:
        os.remove(bad)


def test_randomised_shapes_vary_the_load():
    env = scalesim.make_env(PEAK, random_shapes=True, rate_scale=(0.8, 1.2))
    totals = []
    for seed in range(4):
        env.reset(seed=seed)
        rps = []
        for _ in range(20):
            obs, *_ = env.step(27)
            rps.append(float(obs["services"][0][5]))
        totals.append(tuple(np.round(rps, 4)))
    assert len(set(totals)) == 4


def test_run_and_load_run(tmp_path):
    pd = pytest.importorskip("pandas")
    out = tmp_path / "run"
    summary = scalesim.run(CHAIN, policy="hpa", seed=1, out=out, horizon=60)
    assert summary["policy"] == "hpa" and summary["horizon_s"] == 60.0
    frames = scalesim.load_run(out)
    assert frames["summary"] == summary
    assert isinstance(frames["timeline"], pd.DataFrame) and len(frames["timeline"]) == 60 * 5
    assert list(frames["actions"].columns)[:4] == ["time_s", "service", "from", "to"]
    lean = scalesim.run(CHAIN, policy="hpa", seed=1, out=tmp_path / "lean", horizon=60, no_timeline=True)
    assert lean == summary
    assert sorted(scalesim.load_run(tmp_path / "lean")) == ["actions", "latency", "summary"]
    with pytest.raises(ValueError, match="policy"):
        scalesim.run(CHAIN, policy="nonsense", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_an_hpa_floor_raises_held_services_to_the_hpa_count():
    # Holding every service keeps the replicas where they are without a floor; with one at 40%
    # CPU the hold is raised to the HPA's count, which on peak is above one replica. A delta that
    # would go below the floor is masked.
    def after_holds(floor):
        env = scalesim.make_env(PEAK, action="per_service", hpa_floor=floor)
        env.reset(options={"episode_seed": 5})
        for _ in range(8):
            info = env.step(np.full(11, 2))[4]
        return env, info["replicas"]

    _, free = after_holds(None)
    env, floored = after_holds(0.4)
    assert sum(floored.values()) > sum(free.values()), (free, floored)
    masks = env.action_masks().reshape(11, 5)
    # Above its minimum of one replica, only the floor masks -2 (no scale-down window here).
    on_floor = [n for i, n in enumerate(env.service_names) if floored[n] >= 3 and not masks[i, 0]]
    assert on_floor, (floored, masks)
    with pytest.raises(ValueError, match="hpa_floor"):
        scalesim.make_env(PEAK, hpa_floor=1.0)
    with pytest.raises(ValueError, match="hpa_floor"):
        scalesim.make_env(PEAK, action="per_service", hpa_floor=0)
    # Counting refused visits as load: on peak's first minutes one replica of the frontend refuses
    # visits, so the floor at 100% CPU asks for more than the plain one (which sees a CPU at its
    # limit). Without a floor the switch is refused.
    def floored_at_100(counts_refused):
        env = scalesim.make_env(PEAK, action="per_service", hpa_floor=1.0, floor_counts_refused=counts_refused)
        env.reset(options={"episode_seed": 5})
        for _ in range(4):
            info = env.step(np.full(11, 2))[4]
        return sum(info["replicas"].values())

    assert floored_at_100(True) > floored_at_100(False)
    with pytest.raises(ValueError, match="floor_counts_refused"):
        scalesim.make_env(PEAK, action="per_service", floor_counts_refused=True)
    # Reading the busiest second of each 15 s window instead of its mean: peak's Poisson arrivals
    # are never even. Holding, every count is its floor; the first decision finds every service
    # at one replica either way, so the second sees the same history, and there each service's
    # floor is at least the plain one and some are above it (11 -> 15 replicas in all against
    # 11 -> 12). Later decisions differ in history, and the cluster's room is shared, so only
    # that one compares service by service.
    # The latest second is one of the spans the busiest reads, and a ratio is at least 1: each
    # service's floor lies between the plain one and the busiest second's.
    def floors(peak_s, reads="busiest"):
        env = scalesim.make_env(
            PEAK, action="per_service", hpa_floor=1.0, floor_peak_s=peak_s, floor_peak_reads=reads
        )
        env.reset(options={"episode_seed": 5})
        first = env.step(np.full(11, 2))[4]["replicas"]
        assert set(first.values()) == {1}, first
        return env.step(np.full(11, 2))[4]["replicas"]

    plain, busiest, latest = floors(None), floors(1.0), floors(1.0, "latest")
    assert all(busiest[n] >= plain[n] for n in plain) and busiest != plain, (plain, busiest)
    assert all(plain[n] <= latest[n] <= busiest[n] for n in plain), (plain, latest, busiest)
    for bad, field in (
        (dict(floor_peak_s=6.0), "floor_peak_s"),
        (dict(hpa_floor=1.0, floor_peak_s=0.5), "floor_peak_s"),
        (dict(hpa_floor=1.0, floor_peak_reads="latest"), "floor_peak_reads"),
        (dict(hpa_floor=1.0, floor_peak_s=6.0, floor_peak_reads="newest"), "floor_peak_reads"),
    ):
        with pytest.raises(ValueError, match=field):
            scalesim.make_env(PEAK, action="per_service", **bad)


def _asking_two_more(**kw):
    # Twelve decisions of peak (episode 5) asking +2 of every service: the service features seen
    # (decisions x services x features) and the replica counts after each decision.
    env = scalesim.make_env(PEAK, action="per_service", **kw)
    obs, _ = env.reset(options={"episode_seed": 5})
    seen, replicas = [obs["services"]], []
    for _ in range(12):
        obs, _, _, _, info = env.step(np.full(11, 2))
        seen.append(obs["services"])
        replicas.append(info["replicas"])
    return np.stack(seen), replicas


def test_a_load_forecast_moves_the_hpa_feature_and_the_bounds_that_read_it():
    # The same episode and actions with and without a forecast 30 s ahead: the dynamics are the
    # same, and only the HPA-formula feature (column 8) differs, on some steps (peak's load moves).
    episode = _asking_two_more
    plain, counts = episode()
    ahead, counts_ahead = episode(load_forecast_s=30.0)
    assert counts == counts_ahead
    moved = np.argwhere(plain != ahead)
    assert len(moved) > 0 and set(moved[:, 2]) == {8}, moved
    # The bounds read it only with their own switch, and need the horizon and their bound.
    floored = dict(hpa_floor=1.0, hpa_ceiling=0.5, load_forecast_s=30.0)
    episode(floor_reads_forecast=True, ceiling_reads_forecast=True, **floored)
    for bad, field in [
        (dict(load_forecast_s=0.0), "load_forecast_s"),
        (dict(load_forecast_s=3601.0), "load_forecast_s"),
        (dict(hpa_floor=1.0, floor_reads_forecast=True), "floor_reads_forecast"),
        (dict(load_forecast_s=30.0, ceiling_reads_forecast=True), "ceiling_reads_forecast"),
    ]:
        with pytest.raises(ValueError, match=field):
            scalesim.make_env(PEAK, action="per_service", **bad)
    gat = os.path.join(ROOT, "configs", "agents", "gat_ppo.yaml")
    with pytest.raises(ValueError, match="load_forecast_s"):
        scalesim.make_vec_env(PEAK, 2, agent_config=gat, load_forecast_s=30.0)


def test_a_burst_count_replaces_the_cpu_limit_feature():
    # The same episode and actions with and without a burst count over 5 s: the dynamics are the
    # same, only column 11 differs, and with it that column is an HPA count over max: a multiple
    # of 1/7 for Online Boutique's services, of 1/3 for redis-cart (the last), at most 1 (0 before
    # any arrivals).
    plain, counts = _asking_two_more()
    burst, counts_burst = _asking_two_more(burst_count_s=5.0)
    assert counts == counts_burst
    moved = np.argwhere(plain != burst)
    assert len(moved) > 0 and set(moved[:, 2]) == {11}, moved
    replicas = burst[:, :, 11] * np.array([7.0] * 10 + [3.0])
    assert np.allclose(replicas, np.round(replicas), atol=1e-4), replicas
    assert replicas.min() >= 0.0 and replicas.max() >= 1.0 and burst[:, :, 11].max() <= 1.0
    for bad in (0.5, 121.0):
        with pytest.raises(ValueError, match="burst_count_s"):
            scalesim.make_env(PEAK, action="per_service", burst_count_s=bad)
    # The agent config's words (src/rl/agent/config/tests.rs checks the same text).
    with pytest.raises(ValueError, match=r"burst_count_s: 121 is outside 1 <= burst_count_s <= 120"):
        scalesim.make_env(PEAK, action="per_service", burst_count_s=121.0)


def test_a_fast_floor_raises_services_between_decisions():
    # Holding every service for 13 decisions of the flash-crowds validation load under a floor at
    # 100% CPU (refusals counted): with a fast floor every 3 s, the crowd at about 150 s is met by
    # its raises ("fast floor: NAME N -> M", each upward) within the decision; without it none.
    # Its settings are checked as an agent config's, by field name.
    crowds = os.path.join(ROOT, "scenarios", "validation", "ob_flash_crowds.yaml")

    def executed(**kw):
        env = scalesim.make_env(crowds, action="per_service", hpa_floor=1.0, floor_counts_refused=True, **kw)
        env.reset(options={"episode_seed": 5})
        steps = [env.step(np.full(11, 2))[4]["executed"] for _ in range(13)]
        return [e for step in steps for e in step.split("; ") if e.startswith("fast floor: ")]

    raises = executed(fast_floor_every_s=3.0)
    assert raises, "no fast raise on the flash crowds"
    # At a panic ratio of 10 no raise is ten times a count: none.
    assert executed(fast_floor_every_s=3.0, fast_floor_panic_ratio=10.0) == []
    for e in raises:
        before, after = e.rsplit(" ", 3)[1::2]
        assert int(after) > int(before), e
    assert executed() == []
    for bad, field in [
        (dict(fast_floor_every_s=3.0), "fast_floor_every_s"),
        (dict(hpa_floor=1.0, fast_floor_every_s=4.0), "fast_floor_every_s"),
        (dict(hpa_floor=1.0, fast_floor_reads_s=6.0), "fast_floor_reads_s"),
        (dict(hpa_floor=1.0, fast_floor_every_s=3.0, fast_floor_reads_s=500.0), "fast_floor_reads_s"),
        (dict(hpa_floor=1.0, fast_floor_panic_ratio=2.0), "fast_floor_panic_ratio"),
        (dict(hpa_floor=1.0, fast_floor_leaves_window=True), "fast_floor_leaves_window"),
        (dict(hpa_floor=1.0, fast_floor_every_s=3.0, fast_floor_panic_ratio=0.5), "fast_floor_panic_ratio"),
    ]:
        with pytest.raises(ValueError, match=field):
            scalesim.make_env(PEAK, action="per_service", **bad)


def test_an_hpa_ceiling_caps_and_hpa_levels_choose_the_hpa_count():
    # Asking +2 of every service for 8 decisions: without a ceiling the counts climb; with one at
    # 40% CPU no service ends above the HPA's count there, which on peak is below the maximum.
    def after(action, **kw):
        env = scalesim.make_env(PEAK, action="per_service", **kw)
        env.reset(options={"episode_seed": 5})
        for _ in range(8):
            info = env.step(np.full(11, action))[4]
        return sum(info["replicas"].values())

    free, capped = after(4), after(4, hpa_ceiling=0.4)
    assert capped < free, (free, capped)
    # A release step (its effect is checked by hand in the Rust tests) is taken with a ceiling,
    # refused without one, and refused when it is not a whole number of replicas >= 1.
    scalesim.make_env(PEAK, action="per_service", hpa_ceiling=0.4, ceiling_release_step=2).reset()
    with pytest.raises(ValueError, match="ceiling_release_step"):
        scalesim.make_env(PEAK, action="per_service", hpa_ceiling=0.4, ceiling_release_step=0)
    with pytest.raises(ValueError, match="ceiling_release_step"):
        scalesim.make_env(PEAK, action="per_service", hpa_ceiling=0.4, ceiling_release_step=-1)
    # Levels: the richest level (20%) keeps more replicas than the leanest (100%).
    levels = [1.0, 0.8, 0.6, 0.4, 0.2]
    assert after(4, hpa_levels=levels) > after(0, hpa_levels=levels)
    for bad in [
        dict(hpa_ceiling=0.4, action="single"),
        dict(hpa_ceiling=0.6, hpa_floor=0.6),
        dict(hpa_levels=[1.0, 0.8, 0.6, 0.4]),
        dict(hpa_levels=[0.2, 0.4, 0.6, 0.8, 1.0]),
        dict(hpa_levels=levels, hpa_floor=1.0),
        dict(ceiling_release_step=2),
    ]:
        kw = {"action": "per_service", **bad}
        with pytest.raises(ValueError, match="hpa_"):
            scalesim.make_env(PEAK, **kw)


def test_a_scale_down_window_holds_counts_and_a_plus_one_at_the_bound_renews_it():
    # Every service +2 for four decisions, then -2: without a window the counts fall at once;
    # with a 300 s window (20 decisions of 15 s) the scale-downs are masked and the counts hold.
    def up_then_down(**kw):
        env = scalesim.make_env(PEAK, action="per_service", **kw)
        env.reset(options={"episode_seed": 5})
        for _ in range(4):
            env.step(np.full(11, 4))
        replicas = env.step(np.full(11, 2))[4]["replicas"]
        low = sum(env.step(np.full(11, 0))[4]["replicas"].values())
        return replicas, low, env

    replicas, low, _ = up_then_down()
    assert low < sum(replicas.values()), (replicas, low)
    replicas, low, env = up_then_down(downscale_stabilization_s=300.0)
    assert low == sum(replicas.values()), (replicas, low)
    # The services at their max (peak's: 3 for redis-cart, 7 for the others; four +2s from one
    # replica reach it): +1 is masked there, unless it renews the window.
    maxed = [i for i, n in enumerate(env.service_names) if replicas[n] == (3 if n == "redis-cart" else 7)]
    assert maxed, replicas
    assert not env.action_masks().reshape(11, 5)[maxed, 3].any()
    _, _, renewing = up_then_down(downscale_stabilization_s=300.0, renew_window_at_bound=True)
    assert renewing.action_masks().reshape(11, 5)[maxed, 3].all()
    # The renewal only while the ceiling's HPA count reaches the count (its mask is checked by
    # hand in the Rust tests) is taken with a ceiling and the renewal.
    only = dict(hpa_ceiling=0.5, renew_window_at_bound=True, renew_only_while_needed=True)
    up_then_down(downscale_stabilization_s=300.0, **only)
    # The floor's peak over the window is held: after the +2s, holding (0) with the floor at 100%
    # keeps at least as many replicas as the plain floor.
    def held(holds_peak):
        env = scalesim.make_env(
            PEAK, action="per_service", hpa_floor=1.0, downscale_stabilization_s=300.0, floor_holds_peak=holds_peak
        )
        env.reset(options={"episode_seed": 5})
        for _ in range(10):
            info = env.step(np.full(11, 2))[4]
        return sum(info["replicas"].values())

    assert held(True) >= held(False)
    for bad, field in [
        (dict(renew_window_at_bound=True), "renew_window_at_bound"),
        (dict(renew_window_at_bound=True, renew_only_while_needed=True, downscale_stabilization_s=300.0), "renew_only"),
        (dict(floor_holds_peak=True, downscale_stabilization_s=300.0), "floor_holds_peak"),
        (dict(floor_holds_peak=True, hpa_floor=1.0), "floor_holds_peak"),
        (dict(downscale_stabilization_s=-1.0), "downscale_stabilization_s"),
        (dict(downscale_stabilization_s=float("nan")), "downscale_stabilization_s"),
    ]:
        with pytest.raises(ValueError, match=field):
            scalesim.make_env(PEAK, action="per_service", **bad)
    # Beside an agent config they are environment keywords too, refused by name.
    gat = os.path.join(ROOT, "configs", "agents", "gat_ppo.yaml")
    with pytest.raises(ValueError, match="renew_window_at_bound"):
        scalesim.make_env(PEAK, agent_config=gat, renew_window_at_bound=True)
