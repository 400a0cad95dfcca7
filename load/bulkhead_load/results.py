"""The typed records a run produces. `to_json` turns any of them (and the `Report` that
holds them all) into the JSON of report.json; fields that are None are left out."""

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from .fmt import fmt


@dataclass
class Sample:
    """The server process over one scenario (sampling.Sampler)."""

    server_cpu_s: float
    server_cpu_cores: Optional[float]
    generator_cpu_s: float
    server_context_switches: dict  # {"voluntary": n, "involuntary": n}
    rss_before_mb: float
    rss_after_mb: float
    rss_peak_mb: float
    vm_hwm_mb: float


@dataclass
class WrkSummary:
    """One wrk run, from the WRKJSON line the Lua script prints."""

    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    non_2xx_3xx: int
    socket_errors: dict
    status_counts: Optional[dict]  # per status code, when counted in Lua


@dataclass
class ScenarioResult:
    """A closed-loop scenario (or the floor or a baseline): wrk's figures, the server's
    sample over it, and the ratios to the floor (filled in at the end of the run)."""

    name: str
    title: str
    generator: str
    connections: int
    status_counted_in_lua: bool
    note: str
    wrk: WrkSummary
    sample: Sample
    cpu_us_per_request: Optional[float]
    context_switches_per_request: Optional[float]
    server_status_classes: Optional[dict] = None  # from /metrics (Bulkhead only)
    rps_share_of_floor: Optional[float] = None
    p99_over_floor_p99: Optional[float] = None
    rounds: Optional[int] = None  # median of this many interleaved rounds

    # The figures every report row shows, read the same way for every kind of result.
    @property
    def rps(self):
        return self.wrk.rps

    @property
    def p99_ms(self):
        return self.wrk.p99_ms

    @property
    def status_counts(self):
        return self.wrk.status_counts

    def headline(self):
        """(requests/s cell, p50, p99, p99.9) of the report's main table."""
        w = self.wrk
        return fmt(w.rps, 0), w.p50_ms, w.p99_ms, w.p999_ms

    def headline_rps(self):
        return self.wrk.rps

    def headline_p99(self):
        return self.wrk.p99_ms


@dataclass
class LatencySplit:
    count: int
    p50_ms: Optional[float]
    p99_ms: Optional[float]
    p999_ms: Optional[float]
    max_ms: float


@dataclass
class OverloadResult:
    """The open-loop overload scenario: every request's status and latency (oha), split
    into admitted (2xx) and rejected (429/503), and the server's own view of them."""

    name: str
    title: str
    generator: str
    base: str
    base_rps: float
    offered_rps: int
    duration_s: int
    requests: int
    sent: int
    sent_rps: float
    admitted: int
    admitted_rps: float
    admitted_p50_ms: Optional[float]
    admitted_p99_ms: Optional[float]
    admitted_p999_ms: Optional[float]
    rejected: int
    rejected_p50_ms: Optional[float]
    rejected_p99_ms: Optional[float]
    other_statuses: dict
    client_errors: dict
    per_status: dict  # status -> LatencySplit
    p50_ms: Optional[float]
    p99_ms: Optional[float]
    p999_ms: Optional[float]
    status_counts: dict
    server_status_classes: dict
    rss_settled_mb: float
    server_side_latency: dict
    server_side_latency_2xx: dict
    server_side_latency_5xx: dict
    db_read_queue_wait: dict
    db_read_rejected: dict
    sample: Sample
    cpu_us_per_request: Optional[float]
    pinning: Optional[dict] = None
    rps_share_of_floor: Optional[float] = None
    p99_over_floor_p99: Optional[float] = None

    @property
    def rps(self):
        return round(self.requests / self.duration_s, 1)

    def headline(self):
        return (f"{fmt(self.admitted_rps, 0)} admitted (offered {fmt(self.offered_rps)}, "
                f"sent {fmt(self.sent_rps, 0)})",
                self.admitted_p50_ms, self.admitted_p99_ms, self.admitted_p999_ms)

    def headline_rps(self):
        return self.admitted_rps

    def headline_p99(self):
        return self.admitted_p99_ms


@dataclass
class RoundFigures:
    rps: float
    p99_ms: float
    cpu_us_per_request: Optional[float]


@dataclass
class Round:
    """One interleaved round of the head-to-head: figures per system."""

    round: int
    figures: dict  # name -> RoundFigures


@dataclass
class BodyMatch:
    """A baseline's answer against Bulkhead's for the same user."""

    bytes: int
    bulkhead_bytes: int
    same_as_bulkhead: bool


@dataclass
class Versus:
    """Scenario 1 over a baseline of the same run: requests/s ratio (above 1: Bulkhead
    serves more) and p99 ratio (below 1: Bulkhead's tail is shorter)."""

    baseline: str
    s1_rps: float
    base_rps: float
    rps_ratio: Optional[float]
    s1_p99_ms: float
    base_p99_ms: float
    p99_ratio: Optional[float]
    round_rps_ratios: list
    rounds_won: int


@dataclass
class AccessLogCost:
    on_rps: float
    off_rps: float
    on_p99_ms: float
    off_p99_ms: float
    on_cpu_us_per_request: float
    off_cpu_us_per_request: float
    on_runs: int
    off_runs: int
    rps_cost_pct: float


@dataclass
class LuaCountCost:
    without_rps: float
    with_rps: float
    cost_pct: float


@dataclass
class MemoryResult:
    users: int
    cache_entries: float
    cache_capacity: int
    fill_s: float
    rss_idle_mb: float
    rss_mb: float
    hwm_mb: float
    path: str


@dataclass
class TargetCheck:
    target: str
    passed: bool
    detail: str


@dataclass
class Meta:
    timestamp: str
    commit: str
    branch: str
    dirty: bool
    host: str
    cores: int
    loadavg_start: str
    workers: int
    threads: int
    connections: int
    duration_s: int
    warmup_s: int
    users: int
    products: int
    access_log: bool
    quick: bool
    server_env: dict
    wrk: list
    loadavg_end: Optional[str] = None


@dataclass
class PgbenchResult:
    """One pgbench run beside a scenario (pgbench.py)."""

    name: str  # pgbench_select_only | pgbench_tpcb_like
    mode: str  # select-only | tpcb-like
    scale: int
    clients: int
    threads: int
    duration_s: int
    tps: float
    latency_avg_ms: float
    transactions: int
    beside: str  # the scenario it is the baseline of


@dataclass
class PgbenchRatio:
    """A scenario's throughput against pgbench's, from the same run."""

    scenario: str
    pgbench: str
    scenario_rps: float
    pgbench_tps: float
    ratio: float
    note: str = ""


@dataclass
class Report:
    meta: Optional[Meta] = None
    floor: Optional[ScenarioResult] = None
    baselines: list = field(default_factory=list)  # ScenarioResult: inline, lean axum
    scenarios: list = field(default_factory=list)  # s1 and the registered scenarios
    extra: list = field(default_factory=list)  # access-log A-B-A, s5_base
    rounds: list = field(default_factory=list)  # Round
    scenario1_note: Optional[str] = None
    users_me: Optional[dict] = None  # Bulkhead's answer: bytes and ETag
    baseline_bodies: dict = field(default_factory=dict)  # baseline name -> BodyMatch
    versus: dict = field(default_factory=dict)  # baseline name -> Versus
    access_log_cost: Optional[AccessLogCost] = None
    lua_count_cost: Optional[LuaCountCost] = None
    perf_s1: Optional[str] = None
    memory_100k: Optional[MemoryResult] = None
    # Opt-in scenarios with servers of their own (s6_fleet, s7_events, reload): name ->
    # {"markdown": [lines], "data": {...}}, each its own section of the report.
    studies: dict = field(default_factory=dict)
    pgbench: list = field(default_factory=list)  # PgbenchResult
    pgbench_ratios: list = field(default_factory=list)  # PgbenchRatio
    targets: list = field(default_factory=list)  # TargetCheck

    def scenario(self, name):
        return next((s for s in self.scenarios if s.name == name), None)

    def baseline(self, name):
        return next((b for b in self.baselines if b.name == name), None)


def to_json(obj):
    """Plain JSON data of a record (recursively), without the None fields."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if getattr(obj, f.name) is not None}
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, set):
        return sorted(obj)
    return obj
