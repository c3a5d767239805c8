"""Type stubs of the Rust extension (`python/src/lib.rs`). Use the `scalesim` package's API;
this module moves bytes."""

from typing import List, Optional, Sequence, Tuple

DELTAS: List[int]

class CoreSpec:
    """How to build environments: the environment keywords, checked once (``ValueError`` naming
    the field). ``scalesim._core_args`` gives them; an ``agent_config`` stands for all of them."""

    def __init__(
        self,
        scenarios: Sequence[str],
        fidelity: str = "fluid",
        decision_interval_s: float = 15.0,
        reward: str = "weighted",
        reward_weights: Optional[Sequence[Tuple[str, float]]] = None,
        action: str = "single",
        rate_scale: Tuple[float, float] = (1.0, 1.0),
        start_offset_s: Tuple[float, float] = (0.0, 0.0),
        random_shapes: bool = False,
        timeline_interval_s: Optional[float] = None,
        credit: str = "shared",
        arrival_cv: Optional[Tuple[float, float]] = None,
        anchor: str = "current",
        hpa_floor: Optional[float] = None,
        floor_counts_refused: bool = False,
        floor_peak_s: Optional[float] = None,
        floor_peak_reads: str = "busiest",
        hpa_ceiling: Optional[float] = None,
        ceiling_release_step: Optional[int] = None,
        hpa_levels: Optional[Tuple[float, float, float, float, float]] = None,
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
        agent_config: Optional[str] = None,
    ) -> None: ...

class Layout:
    """What every environment of one spec shares: the action's shape and the graph's."""

    per_service: bool
    dims: Tuple[int, int, int]
    feature_sizes: Tuple[int, int, int, int]
    service_names: List[str]
    max_replicas: List[int]
    edge_index: List[Tuple[int, int]]

class CoreEnv:
    def __init__(self, spec: CoreSpec) -> None: ...
    @property
    def layout(self) -> Layout: ...
    def reset(self, seed: int) -> Tuple[bytes, bytes, bytes, bytes]: ...
    def step(
        self, action: Sequence[int]
    ) -> Tuple[
        Tuple[bytes, bytes, bytes, bytes],
        float,
        bool,
        bool,
        Tuple[
            float, float, float, List[int], str, str, Tuple[float, float, float, float, float, float], List[float]
        ],
    ]: ...
    def action_mask(self) -> bytes: ...

class CoreVecEnv:
    def __init__(self, spec: CoreSpec, num_envs: int, threads: Optional[int] = None) -> None: ...
    @property
    def layout(self) -> Layout: ...
    @property
    def num_envs(self) -> int: ...
    def reset(self, seed: int) -> Tuple[bytes, bytes, bytes, bytes]: ...
    def step(
        self, actions: bytes
    ) -> Tuple[Tuple[bytes, bytes, bytes, bytes], Tuple[bytes, bytes, bytes, bytes, bytes, bytes]]: ...
    def action_masks(self) -> bytes: ...

def run(
    scenario: str,
    out: str,
    policy: str = "static",
    policy_config: Optional[str] = None,
    seed: Optional[int] = None,
    horizon: Optional[float] = None,
    force: bool = False,
    no_timeline: bool = False,
) -> str: ...
