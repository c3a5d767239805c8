"""scalesim from Python: gymnasium environments over the simulator, runs, and their results.

    import scalesim
    env = scalesim.make_env("scenarios/online_boutique_peak.yaml")   # a gymnasium.Env
    obs, info = env.reset(seed=1)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

    venv = scalesim.make_vec_env("scenarios/online_boutique_peak.yaml", 16)  # a gymnasium VectorEnv
    summary = scalesim.run("scenarios/online_boutique_peak.yaml", policy="hpa", seed=1, out="runs/x")
    frames = scalesim.load_run("runs/x")                                # pandas DataFrames

The simulation runs in Rust (`scalesim._core`); this module gives it gymnasium's API. Errors in
scenarios and arguments raise ``ValueError`` with the command-line tool's text (file, line, field);
failures while running raise ``RuntimeError``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from . import _core

__all__ = ["ScalesimEnv", "ScalesimVecEnv", "make_env", "make_vec_env", "run", "load_run", "load_sweep", "DELTAS"]

#: The replica deltas of the five choices per service, in action order.
DELTAS: Tuple[int, ...] = tuple(_core.DELTAS)

PathLike = Union[str, "os.PathLike[str]"]
_ACTIONS = ("single", "per_service")


def _scenario_list(scenario: Union[PathLike, Sequence[PathLike]]) -> list:
    if isinstance(scenario, (str, os.PathLike)):
        return [os.fspath(scenario)]
    return [os.fspath(s) for s in scenario]


def _levels(levels: Sequence[float]) -> Tuple[float, float, float, float, float]:
    """``hpa_levels`` as the extension takes them: five CPU targets."""
    values = tuple(float(v) for v in levels)
    if len(values) != 5:
        raise ValueError(f"hpa_levels: {len(values)} targets given; it takes five (for the deltas -2..=2)")
    return values  # type: ignore[return-value]


def _release_step(step: Optional[int]) -> Optional[int]:
    """``ceiling_release_step`` as the extension takes it: a whole number of replicas, >= 0 here
    (the extension refuses 0, naming the field, as an agent config does)."""
    if step is None:
        return None
    if isinstance(step, bool) or int(step) != step or step < 0:
        raise ValueError(f"ceiling_release_step: {step!r} is not a whole number of replicas >= 1")
    return int(step)


def _core_kwargs(
    fidelity: str,
    decision_interval_s: float,
    reward: str,
    reward_weights: Optional[Dict[str, float]],
    action: str,
    credit: str,
    anchor: str,
    hpa: Dict[str, Any],
    randomisation: Dict[str, Any],
) -> Dict[str, Any]:
    allowed = {"rate_scale", "start_offset_s", "random_shapes", "timeline_interval_s", "arrival_cv"}
    unknown = set(randomisation) - allowed
    if unknown:
        raise TypeError(f"unknown keyword(s) {sorted(unknown)}; randomisation takes {sorted(allowed)}")
    kw: Dict[str, Any] = dict(
        fidelity=fidelity,
        decision_interval_s=float(decision_interval_s),
        reward=reward,
        reward_weights=None if reward_weights is None else [(str(k), float(v)) for k, v in reward_weights.items()],
        action=action,
        credit=credit,
        anchor=anchor,
        hpa_floor=None if hpa.get("hpa_floor") is None else float(hpa["hpa_floor"]),
        floor_counts_refused=bool(hpa.get("floor_counts_refused", False)),
        floor_peak_s=None if hpa.get("floor_peak_s") is None else float(hpa["floor_peak_s"]),
        floor_peak_reads=str(hpa.get("floor_peak_reads", "busiest")),
        hpa_ceiling=None if hpa.get("hpa_ceiling") is None else float(hpa["hpa_ceiling"]),
        ceiling_release_step=_release_step(hpa.get("ceiling_release_step")),
        hpa_levels=None if hpa.get("hpa_levels") is None else _levels(hpa["hpa_levels"]),
        floor_holds_peak=bool(hpa.get("floor_holds_peak", False)),
        renew_window_at_bound=bool(hpa.get("renew_window_at_bound", False)),
        renew_only_while_needed=bool(hpa.get("renew_only_while_needed", False)),
        downscale_stabilization_s=float(hpa.get("downscale_stabilization_s", 0.0)),
        load_forecast_s=None if hpa.get("load_forecast_s") is None else float(hpa["load_forecast_s"]),
        floor_reads_forecast=bool(hpa.get("floor_reads_forecast", False)),
        ceiling_reads_forecast=bool(hpa.get("ceiling_reads_forecast", False)),
        fast_floor_every_s=None if hpa.get("fast_floor_every_s") is None else float(hpa["fast_floor_every_s"]),
        fast_floor_reads_s=None if hpa.get("fast_floor_reads_s") is None else float(hpa["fast_floor_reads_s"]),
        fast_floor_panic_ratio=None
        if hpa.get("fast_floor_panic_ratio") is None
        else float(hpa["fast_floor_panic_ratio"]),
        fast_floor_leaves_window=bool(hpa.get("fast_floor_leaves_window", False)),
        burst_count_s=None if hpa.get("burst_count_s") is None else float(hpa["burst_count_s"]),
    )
    for key in ("rate_scale", "start_offset_s", "arrival_cv"):
        if key in randomisation:
            lo, hi = randomisation[key]
            kw[key] = (float(lo), float(hi))
    if "random_shapes" in randomisation:
        kw["random_shapes"] = bool(randomisation["random_shapes"])
    if randomisation.get("timeline_interval_s") is not None:
        kw["timeline_interval_s"] = float(randomisation["timeline_interval_s"])
    return kw


#: The HPA shields' keywords, the scale-down window, the load forecast and the burst count, at
#: their defaults: both environments pass them to the extension as given, which checks them as an
#: agent config's fields.
_SHIELD_DEFAULTS: Dict[str, Any] = dict(
    hpa_floor=None,
    floor_counts_refused=False,
    floor_peak_s=None,
    floor_peak_reads="busiest",
    hpa_ceiling=None,
    ceiling_release_step=None,
    hpa_levels=None,
    floor_holds_peak=False,
    renew_window_at_bound=False,
    renew_only_while_needed=False,
    downscale_stabilization_s=0.0,
    load_forecast_s=None,
    floor_reads_forecast=False,
    ceiling_reads_forecast=False,
    fast_floor_every_s=None,
    fast_floor_reads_s=None,
    fast_floor_panic_ratio=None,
    fast_floor_leaves_window=False,
    burst_count_s=None,
)

#: The environment keywords (both environments take them; an agent config replaces them), at their
#: defaults.
_ENV_DEFAULTS: Dict[str, Any] = dict(
    fidelity="fluid",
    decision_interval_s=15.0,
    reward="weighted",
    reward_weights=None,
    action="single",
    credit="shared",
    anchor="current",
    **_SHIELD_DEFAULTS,
)


def _core_args(agent_config: Optional[PathLike], randomisation: Dict[str, Any], **env: Any) -> Dict[str, Any]:
    """The extension's keywords: the environment ``agent_config`` trains in, or the one the
    environment keywords ``env`` describe. Beside an agent config, an environment keyword would
    be ignored, so one given (not at its default) is refused by name."""
    if agent_config is None:
        if env["action"] not in _ACTIONS:
            raise ValueError(f"action: {env['action']!r} is not 'single' or 'per_service'")
        hpa = {k: env[k] for k in _SHIELD_DEFAULTS}
        return _core_kwargs(
            env["fidelity"],
            env["decision_interval_s"],
            env["reward"],
            env["reward_weights"],
            env["action"],
            env["credit"],
            env["anchor"],
            hpa,
            randomisation,
        )
    clash = sorted(k for k, v in env.items() if v != _ENV_DEFAULTS[k]) + sorted(randomisation)
    if clash:
        raise ValueError(
            f"agent_config: {os.fspath(agent_config)} sets the environment; {', '.join(clash)} "
            "cannot be given beside it (set them in the agent config)"
        )
    return dict(agent_config=os.fspath(agent_config))


def _graph_space(services: int, edges: int, skus: int, sizes: Tuple[int, int, int, int]) -> spaces.Dict:
    fs, fe, fk, fg = sizes
    return spaces.Dict(
        {
            "services": spaces.Box(0.0, 1.0, (services, fs), np.float32),
            "edges": spaces.Box(0.0, 1.0, (edges, fe), np.float32),
            "edge_index": spaces.Box(0, max(services - 1, 0), (edges, 2), np.int64),
            "skus": spaces.Box(0.0, 1.0, (skus, fk), np.float32),
            "global": spaces.Box(0.0, 1.0, (fg,), np.float32),
        }
    )


def _spaces(layout, flatten: bool):
    """One environment's observation and action spaces, from a core environment's layout."""
    services, edges, skus = layout.dims
    graph = _graph_space(services, edges, skus, layout.feature_sizes)
    if flatten:
        n = sum(int(np.prod(graph[k].shape)) for k in ("services", "edges", "skus", "global"))
        observation = spaces.Box(0.0, 1.0, (n,), np.float32)
    else:
        observation = graph
    if not layout.per_service:
        return observation, spaces.Discrete(services * 5)
    return observation, spaces.MultiDiscrete([5] * services)


def _core_spec(
    scenario: Union[PathLike, Sequence[PathLike]],
    agent_config: Optional[PathLike],
    randomisation: Dict[str, Any],
    env_keywords: Dict[str, Any],
):
    """What both environments build their core from: the extension's checked keywords."""
    return _core.CoreSpec(_scenario_list(scenario), **_core_args(agent_config, randomisation, **env_keywords))


class ScalesimEnv(gym.Env):
    """One scalesim environment: a decision every ``decision_interval_s`` of simulated time.

    Observation: a ``Dict`` of the service graph (``services`` node features, ``edges`` features of
    the call edges, ``edge_index`` their ``(caller, callee)`` pairs, ``skus`` server-type nodes,
    ``global`` scalars), every feature in [0, 1]; with ``flatten=True`` one ``Box`` of all features
    (services, edges, skus, global, in that order). Action: ``Discrete(services * 5)`` (one service
    moves by ``DELTAS[a % 5]``: the gym-hpa action) or, with ``action="per_service"``,
    ``MultiDiscrete([5] * services)`` (every service moves at once). ``action_masks()`` returns the
    allowed choices as sb3-contrib's ``MaskablePPO`` expects. Episodes end by truncation at the
    scenario's horizon.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        scenario: Union[PathLike, Sequence[PathLike]],
        *,
        fidelity: str = "fluid",
        decision_interval_s: float = 15.0,
        reward: str = "weighted",
        reward_weights: Optional[Dict[str, float]] = None,
        action: str = "single",
        flatten: bool = False,
        credit: str = "shared",
        anchor: str = "current",
        hpa_floor: Optional[float] = None,
        floor_counts_refused: bool = False,
        floor_peak_s: Optional[float] = None,
        floor_peak_reads: str = "busiest",
        hpa_ceiling: Optional[float] = None,
        ceiling_release_step: Optional[int] = None,
        hpa_levels: Optional[Sequence[float]] = None,
        floor_holds_peak: bool = False,
        renew_window_at_bound: bool = False,
        renew_only_while_needed: bool = False,
        downscale_stabilization_s: float = 0.0,
        load_forecast_s: Optional[float] = None,
        floor_reads_forecast: bool = False,
        ceiling_reads_forecast: bool = False,
        fast_floor_every_s: Optional[float] = None,
        fast_floor_reads_s: Optional[float] = None,
        fast_floor_panic_ratio: Optional[float] = None,
        fast_floor_leaves_window: bool = False,
        burst_count_s: Optional[float] = None,
        agent_config: Optional[PathLike] = None,
        **randomisation: Any,
    ) -> None:
        # First, while the parameters are all that `locals()` holds: the environment keywords.
        env_keywords = {k: v for k, v in locals().items() if k in _ENV_DEFAULTS}
        self._core = _core.CoreEnv(_core_spec(scenario, agent_config, randomisation, env_keywords))
        layout = self._core.layout
        self._services, self._edges, self._skus = layout.dims
        self._sizes = layout.feature_sizes
        self._edge_index = np.asarray(layout.edge_index, dtype=np.int64).reshape(self._edges, 2)
        self.service_names = list(layout.service_names)
        self.flatten = flatten
        self.observation_space, self.action_space = _spaces(layout, flatten)

    def _obs(self, parts: Sequence[bytes]):
        fs, fe, fk, _ = self._sizes
        services = np.frombuffer(parts[0], np.float32).reshape(self._services, fs)
        edges = np.frombuffer(parts[1], np.float32).reshape(self._edges, fe)
        skus = np.frombuffer(parts[2], np.float32).reshape(self._skus, fk)
        glob = np.frombuffer(parts[3], np.float32)
        if self.flatten:
            return np.concatenate([services.ravel(), edges.ravel(), skus.ravel(), glob])
        # A copy at every step: gymnasium wants no two observations to share an object.
        return {"services": services, "edges": edges, "edge_index": self._edge_index.copy(), "skus": skus, "global": glob}

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        """Starts an episode. With ``seed`` the episode (and the ones after it) are reproducible.

        ``options={"episode_seed": N}`` runs the simulator's episode ``N`` exactly (as the Rust
        environment's ``reset(N)``); otherwise the episode seed is drawn from ``np_random`` and
        reported in ``info["episode_seed"]``.
        """
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(0, 2**63 - 1))
        if options and "episode_seed" in options:
            episode_seed = int(options["episode_seed"])
            if not 0 <= episode_seed < 2**64:
                raise ValueError(f"options['episode_seed']: {episode_seed} is outside 0..2**64")
        obs = self._obs(self._core.reset(episode_seed))
        return obs, {"time_s": 0.0, "episode_seed": episode_seed}

    def step(self, action):
        if isinstance(action, (int, np.integer)):
            a = [int(action)]
        else:
            a = np.asarray(action, dtype=np.int64).reshape(-1).tolist()
        parts, reward, terminated, truncated, info = self._core.step(a)
        time_s, slo, cost, replicas, executed, blocked, terms, service_rewards = info
        extra = {}
        if service_rewards:
            extra["service_rewards"] = dict(zip(self.service_names, service_rewards))
        return (
            self._obs(parts),
            float(reward),
            bool(terminated),
            bool(truncated),
            {
                "time_s": time_s,
                "slo_violation": slo,
                "cost": cost,
                "replicas": dict(zip(self.service_names, replicas)),
                "executed": executed,
                "blocked": blocked,
                "slack": terms[0],
                "overshoot": terms[1],
                "replica_lag": terms[2],
                "changes": terms[3],
                "latency_ratio": terms[4],
                "replica_hours": terms[5],
                **extra,
            },
        )

    def action_masks(self) -> np.ndarray:
        """Allowed choices now: ``services * 5`` booleans (service-major, deltas -2..=2)."""
        return np.frombuffer(self._core.action_mask(), np.uint8).astype(bool)


class ScalesimVecEnv(VectorEnv):
    """``num_envs`` scalesim environments stepped together in Rust threads (the GIL released).

    Observations are batched along a first axis of length ``num_envs`` (``edge_index`` too).
    Autoreset is gymnasium 1.x's default, next-step: the step after an episode ends resets that
    environment (its action ignored) and returns the new episode's first observation with reward
    0 and neither terminated nor truncated. Environment ``i`` of ``reset(seed=s)`` runs episode
    seeds ``s + i + num_envs * k``.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        scenario: Union[PathLike, Sequence[PathLike]],
        num_envs: int,
        *,
        fidelity: str = "fluid",
        decision_interval_s: float = 15.0,
        reward: str = "weighted",
        reward_weights: Optional[Dict[str, float]] = None,
        action: str = "single",
        flatten: bool = False,
        threads: Optional[int] = None,
        credit: str = "shared",
        anchor: str = "current",
        hpa_floor: Optional[float] = None,
        floor_counts_refused: bool = False,
        floor_peak_s: Optional[float] = None,
        floor_peak_reads: str = "busiest",
        hpa_ceiling: Optional[float] = None,
        ceiling_release_step: Optional[int] = None,
        hpa_levels: Optional[Sequence[float]] = None,
        floor_holds_peak: bool = False,
        renew_window_at_bound: bool = False,
        renew_only_while_needed: bool = False,
        downscale_stabilization_s: float = 0.0,
        load_forecast_s: Optional[float] = None,
        floor_reads_forecast: bool = False,
        ceiling_reads_forecast: bool = False,
        fast_floor_every_s: Optional[float] = None,
        fast_floor_reads_s: Optional[float] = None,
        fast_floor_panic_ratio: Optional[float] = None,
        fast_floor_leaves_window: bool = False,
        burst_count_s: Optional[float] = None,
        agent_config: Optional[PathLike] = None,
        **randomisation: Any,
    ) -> None:
        # First, while the parameters are all that `locals()` holds: the environment keywords.
        env_keywords = {k: v for k, v in locals().items() if k in _ENV_DEFAULTS}
        spec = _core_spec(scenario, agent_config, randomisation, env_keywords)
        self._core = _core.CoreVecEnv(spec, int(num_envs), threads=threads)
        layout = self._core.layout
        self.num_envs = int(num_envs)
        self.single_observation_space, self.single_action_space = _spaces(layout, flatten)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.service_names = list(layout.service_names)
        self.flatten = flatten
        self._services, self._edges, self._skus = layout.dims
        self._sizes = layout.feature_sizes
        edge_index = np.asarray(layout.edge_index, dtype=np.int64).reshape(self._edges, 2)
        self._edge_index = np.broadcast_to(edge_index, (self.num_envs,) + edge_index.shape)
        self._width = self._services if layout.per_service else 1
        self._base = 0
        self._rng = np.random.default_rng()

    def _obs(self, parts: Sequence[bytes]):
        n = self.num_envs
        fs, fe, fk, fg = self._sizes
        services = np.frombuffer(parts[0], np.float32).reshape(n, self._services, fs)
        edges = np.frombuffer(parts[1], np.float32).reshape(n, self._edges, fe)
        skus = np.frombuffer(parts[2], np.float32).reshape(n, self._skus, fk)
        glob = np.frombuffer(parts[3], np.float32).reshape(n, fg)
        if self.flatten:
            return np.concatenate(
                [services.reshape(n, -1), edges.reshape(n, -1), skus.reshape(n, -1), glob], axis=1
            )
        # edge_index is the same at every step: a read-only view, not a copy.
        return {"services": services, "edges": edges, "edge_index": self._edge_index, "skus": skus, "global": glob}

    def reset(self, *, seed: Optional[Union[int, Sequence[int]]] = None, options: Optional[dict] = None):
        if seed is not None:
            if not isinstance(seed, (int, np.integer)):
                seed = int(seed[0])
            self._rng = np.random.default_rng(int(seed))
        self._base = int(self._rng.integers(0, 2**62))
        obs = self._obs(self._core.reset(self._base))
        return obs, {}

    def _seed_of(self, i: int, episode: int) -> int:
        """The simulator's episode seed of environment ``i``'s ``episode``-th episode since reset."""
        return (self._base + i + self.num_envs * episode) % 2**64

    def step(self, actions):
        a = np.ascontiguousarray(np.asarray(actions, dtype=np.int64).reshape(self.num_envs, self._width))
        parts, (rew, term, trunc, slo, cost, service) = self._core.step(a.tobytes())
        info = {
            "slo_violation": np.frombuffer(slo, np.float64),
            "cost": np.frombuffer(cost, np.float64),
        }
        if service:
            info["service_rewards"] = np.frombuffer(service, np.float64).reshape(self.num_envs, self._services)
        return (
            self._obs(parts),
            np.frombuffer(rew, np.float64),
            np.frombuffer(term, np.uint8).astype(bool),
            np.frombuffer(trunc, np.uint8).astype(bool),
            info,
        )

    def action_masks(self) -> np.ndarray:
        """Allowed choices of every environment: shape ``(num_envs, services * 5)``."""
        m = np.frombuffer(self._core.action_masks(), np.uint8).astype(bool)
        return m.reshape(self.num_envs, self._services * 5)


def make_env(scenario: Union[PathLike, Sequence[PathLike]], **kwargs: Any) -> ScalesimEnv:
    """A :class:`ScalesimEnv` over ``scenario`` (a YAML file, or several to draw episodes from).

    Keywords: ``fidelity`` ("fluid" or "request"), ``decision_interval_s`` (15), ``reward``
    ("weighted", "cost", "latency", "multi"), ``reward_weights`` (``{"slo": 5, "capacity": 6, ...}``),
    ``action`` ("single" or "per_service"), ``credit`` ("shared", or "per_service" with
    ``action="per_service"``: ``info["service_rewards"]`` then splits each step's reward among the
    services, by service name, adding up to the reward; a vector environment's is an array
    ``(num_envs, services)``, zeros where an environment was reset), ``anchor`` ("current", or
    "hpa" with ``action="per_service"``: every delta moves from the HPA formula's replica count at
    60% CPU rather than the current count, so the hold action follows the HPA: a residual policy),
    ``hpa_floor`` (a CPU target, 1.0 = 100%, with ``action="per_service"``: no service goes below the
    HPA formula's count at that target; a delta that would is masked, and one that lands below it is
    raised to it, as ``configs/agents/gat_ppo.yaml`` trains), ``floor_counts_refused`` (True, with
    ``hpa_floor``: the floor's formula takes utilisation / (1 - the share of visits refused), so a
    saturated service's floor asks at once for what its arrivals need), ``floor_peak_s`` (seconds
    >= 1, with ``hpa_floor``: the floor reads that-many seconds of the metrics window, by default
    the busiest, its utilisation times that span's mean arrival rate over the window's),
    ``floor_peak_reads`` ("busiest", or "latest" with ``floor_peak_s``: the span read is the
    window's latest that-many seconds, as Knative's panic window, so a burst that has passed reads
    as the window's mean), ``hpa_ceiling`` (a lower CPU target,
    with ``action="per_service"``: no scale-up goes above the HPA formula's count at that target,
    and a count above it is lowered to it), ``ceiling_release_step`` (an int >= 1, with
    ``hpa_ceiling``: the ceiling lowers a service by at most that many replicas a decision), ``hpa_levels`` (five falling CPU targets, with
    ``action="per_service"`` and no floor or ceiling: each delta -2..=2 in turn asks for the HPA
    formula's count at its target, so the policy picks each service's headroom),
    ``downscale_stabilization_s`` (0: a service's scale-downs are masked for this long after its
    last scale-up, and a ceiling releases replicas only after it, as the HPA's 300 s window),
    ``floor_holds_peak`` (True, with ``hpa_floor`` and a window: the floor is its highest value
    over the window), ``renew_window_at_bound`` (True, with ``action="per_service"`` and a window:
    a +1 at a service's max or ceiling holds the count and restarts its window),
    ``renew_only_while_needed`` (True, with ``renew_window_at_bound`` and ``hpa_ceiling``: the
    +1 renews only while the ceiling's HPA count reaches the current count),
    ``load_forecast_s`` (seconds, 0 < s <= 3600: the observation's HPA-formula feature counts for
    each service's arrival rate that far ahead along its last minute's trend),
    ``floor_reads_forecast`` and ``ceiling_reads_forecast`` (True, with ``load_forecast_s`` and
    ``hpa_floor`` or ``hpa_ceiling``: that bound counts for the forecast load when it is above the
    current one), ``fast_floor_every_s`` (seconds >= 1 dividing ``decision_interval_s`` at least
    twice, with ``hpa_floor``: between decisions, every that-many seconds, each service below what
    its latest arrivals need at the floor's target is raised to that count, as Knative's panic
    mode), ``fast_floor_reads_s`` (1-120 s, default 6, with ``fast_floor_every_s``: the span of
    latest arrivals it reads), ``fast_floor_panic_ratio`` (1-10, default 1, with
    ``fast_floor_every_s``: it raises a service only to at least that many times its count, as
    Knative panics at 200%), ``fast_floor_leaves_window`` (True, with ``fast_floor_every_s``: its
    raises do not restart the scale-down window), ``burst_count_s`` (1-120 s: each service's
    observation feature 11 is the HPA formula's count at 60% for its busiest that-many seconds of
    arrivals over the last 120 s, in place of its CPU limit over the SKU's cores),
    ``flatten`` (a flat ``Box`` observation), ``agent_config`` (an agent config file such as
    ``configs/agents/gat_ppo.yaml``: the environment that config trains in, as ``scalesim train``
    builds it: its fidelity and fluid tick, reward, action and shields, scale-down window and load
    randomisation, second-scale bursts included (its main phase: a config's fine-tune at request
    fidelity or another tick is not applied); no other environment keyword may be given beside
    it, and configs with node-type or quota heads or teams are refused), and domain
    randomisation: ``rate_scale=(lo, hi)``, ``start_offset_s=(lo, hi)``, ``random_shapes=True``,
    ``arrival_cv=(lo, hi)`` (each episode's arrivals get gamma gaps of a coefficient of variation
    drawn from the range; 1 is as variable as Poisson, more is burstier).
    ``timeline_interval_s`` overrides the scenario's timeline interval (the fluid model's
    integration step, 1 s in the bundled scenarios); 15 s makes fluid steps about 7x faster and
    coarser.
    """
    return ScalesimEnv(scenario, **kwargs)


def make_vec_env(scenario: Union[PathLike, Sequence[PathLike]], num_envs: int, **kwargs: Any) -> ScalesimVecEnv:
    """A :class:`ScalesimVecEnv` of ``num_envs`` environments; the keywords of :func:`make_env`,
    and ``threads`` (default: the machine's cores)."""
    return ScalesimVecEnv(scenario, num_envs, **kwargs)


def run(
    scenario: PathLike,
    policy: str = "static",
    *,
    seed: Optional[int] = None,
    out: Optional[PathLike] = None,
    policy_config: Optional[PathLike] = None,
    horizon: Optional[float] = None,
    force: bool = False,
    no_timeline: bool = False,
) -> dict:
    """Runs ``scenario`` under ``policy`` (static, hpa, kpa, target, or ``agent:CHECKPOINT``) and
    writes the run folder ``out`` (default ``runs/<scenario>_<policy>_seed<N>``), as
    ``scalesim run`` does; returns ``summary.json`` as a dict. ``no_timeline``: as
    ``--no-timeline``, no ``timeline.csv`` and no ``requests.csv``."""
    if out is None:
        stem = os.path.splitext(os.path.basename(os.fspath(scenario)))[0]
        label = policy.replace(":", "_").replace("/", "_")
        out = os.path.join("runs", f"{stem}_{label}_seed{'default' if seed is None else seed}")
    text = _core.run(
        os.fspath(scenario),
        os.fspath(out),
        policy=policy,
        policy_config=None if policy_config is None else os.fspath(policy_config),
        seed=seed,
        horizon=horizon,
        force=force,
        no_timeline=no_timeline,
    )
    return json.loads(text)


def load_run(path: PathLike) -> Dict[str, Any]:
    """A run folder's files: ``summary`` (dict), and ``timeline``, ``actions``, ``requests``,
    ``latency`` as pandas DataFrames (those present)."""
    import pandas as pd

    path = os.fspath(path)
    with open(os.path.join(path, "summary.json")) as f:
        out: Dict[str, Any] = {"summary": json.load(f)}
    for name in ("timeline", "actions", "requests", "latency"):
        p = os.path.join(path, f"{name}.csv")
        if os.path.exists(p):
            out[name] = pd.read_csv(p)
    return out


def load_sweep(path: PathLike) -> Dict[str, Any]:
    """A sweep folder's tables as pandas DataFrames: every ``*.csv`` directly in it (the per-run
    table, the aggregates), keyed by file name without ``.csv``; ``manifest`` is
    ``sweep_manifest.json`` as a dict."""
    import pandas as pd

    path = os.fspath(path)
    out: Dict[str, Any] = {}
    manifest = os.path.join(path, "sweep_manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            out["manifest"] = json.load(f)
    for name in sorted(os.listdir(path)):
        if name.endswith(".csv"):
            out[name[:-4]] = pd.read_csv(os.path.join(path, name))
    if not out:
        raise ValueError(f"{path}: not a sweep folder (no sweep_manifest.json, no CSV tables)")
    return out
