"""Scenarios: `measure` (one closed-loop wrk scenario against one server, sampled) and
the registry of the scenarios a full run measures after the head-to-head of floor,
baselines and scenario 1 (runs.py).

Adding a scenario (load/README.md, "Adding a scenario"): write a function in a module of
this folder, decorate it with `@scenario("sN_name")`, and import the module at the end
of this file; the import order is the run order. The function gets the `Run` (settings,
the Bulkhead server, seeded tokens and products, the report so far) and adds its results
with `run.add(result)` (a row of the main table) or `run.add(result, extra=True)` (a
supporting row). `load/run --only sN_name` runs just it after the head-to-head.

A scenario that starts servers of its own (a fleet behind nginx, NATS, a reload) is
registered `opt_in=True`: a full run leaves it out (it stays as long as before), and
`--only` names it. When every scenario `--only` names is opt-in, the run is standalone:
no baselines are built and there is no head-to-head (`runs.standalone`).
"""

from dataclasses import dataclass, field
from typing import Callable

from ..config import log
from ..generators import summarize_wrk, wrk
from ..pinning import cpu_list
from ..results import Report, ScenarioResult
from ..sampling import Sampler, scrape, status_classes


def measure(st, srv, name, title, args, count_status=False, warmup=None,
            connections=None, note="", cpus=None):
    """Warm up (not measured), then one wrk run of `st.duration` seconds against `srv`
    with the server sampled, and for Bulkhead its /metrics status classes around it."""
    warm = st.warmup if warmup is None else warmup
    if warm:
        wrk(st, srv.port, warm, args, count_status=False, connections=connections,
            cpus=cpus)
    before = scrape(srv.port) if srv.is_bulkhead else {}
    log(f"{name}: {title} ({st.duration} s)")
    with Sampler(srv.pid) as s:
        w = wrk(st, srv.port, st.duration, args, count_status, connections, label=name,
                cpus=cpus)
    after = scrape(srv.port) if before else {}
    n = w["requests"]
    result = ScenarioResult(
        name=name, title=title,
        generator="wrk (closed loop)" + (f", on CPUs {cpu_list(cpus)}" if cpus else ""),
        connections=connections or st.connections, status_counted_in_lua=count_status,
        note=note, wrk=summarize_wrk(w), sample=s.sample(),
        cpu_us_per_request=round(s.cpu / n * 1e6, 1) if n else None,
        context_switches_per_request=round(sum(s.cs) / n, 3) if n else None,
        server_status_classes=status_classes(before, after) if before else None)
    log(f"  {result.rps:.0f} req/s, p99 {result.p99_ms:.2f} ms, "
        f"non-2xx {result.wrk.non_2xx_3xx}, server CPU {result.sample.server_cpu_cores} "
        "cores")
    return result


@dataclass
class Run:
    """What a registered scenario gets: the settings, the Bulkhead server the scenarios
    run on, what seeding wrote, and the report it adds its results to."""

    st: object  # config.Settings
    srv: object  # procs.Server (stopped before the scenarios of a standalone run)
    report: Report
    users: list  # [(id, email, token)]
    tokens_file: str
    products_file: str
    s1_path: str
    results: dict = field(default_factory=dict)  # name -> result, this run's so far

    def measure(self, name, title, args, **kw):
        """`measure` against the run's Bulkhead server."""
        return measure(self.st, self.srv, name, title, args, **kw)

    def add(self, result, extra=False):
        (self.report.extra if extra else self.report.scenarios).append(result)
        self.results[result.name] = result


REGISTRY: dict = {}  # name -> function(Run), in run order
OPT_IN: set = set()  # names a full run leaves out; only --only runs them
NEEDS: dict = {}  # name -> the servers it starts (tools.SERVICES), checked before the build


def scenario(name, opt_in=False, needs=()) -> Callable:
    """Registers a scenario function under `name` (its report name); `opt_in`: only
    when `--only` names it (it starts servers of its own, `needs`)."""

    def register(fn):
        if name in REGISTRY:
            raise ValueError(f"scenario {name} registered twice")
        REGISTRY[name] = fn
        NEEDS[name] = tuple(needs)
        if opt_in:
            OPT_IN.add(name)
        return fn

    return register


def check_only(only):
    unknown = [n for n in only if n not in REGISTRY]
    if unknown:
        raise SystemExit(f"--only: no scenario {', '.join(unknown)}; registered: "
                         f"{', '.join(REGISTRY)}")


def standalone(only):
    """Every scenario named is opt-in: the run needs no head-to-head before them."""
    return bool(only) and all(n in OPT_IN for n in only)


def selected(only=()):
    """The scenarios a run with `only` measures, in run order."""
    check_only(only)
    return [n for n in REGISTRY if (n in only if only else n not in OPT_IN)]


def run_registered(run, only=()):
    for name in selected(only):
        REGISTRY[name](run)


# The scenarios, in run order. Add yours here.
from . import basic  # noqa: E402,F401  s2_products, s3_orders, s4_mix
from . import overload  # noqa: E402,F401  s5_overload (and s5_base)
from . import fleet  # noqa: E402,F401  s6_fleet (opt-in)
from . import events  # noqa: E402,F401  s7_events (opt-in)
from . import reload  # noqa: E402,F401  reload (opt-in)
from . import gateway  # noqa: E402,F401  gateway, fairness_gateway (opt-in)
from . import gateway_failing  # noqa: E402,F401  gateway_failing (opt-in)
from . import access_log  # noqa: E402,F401  access_log (opt-in)
from . import ab  # noqa: E402,F401  ab (opt-in)
from . import paths  # noqa: E402,F401  paths (opt-in)
