"""The targets (config.TARGET_*): checked and reported, never fatal."""

import json

from .config import (TARGET_MEMORY_100K_MB, TARGET_MEMORY_FLAT_MB,
                     TARGET_OVERLOAD_ADMITTED_P99_MS, TARGET_P99_RATIO,
                     TARGET_REJECTED_P99_MS, TARGET_RPS_SHARE)
from .fmt import fmt, ratio
from .results import TargetCheck, Versus

# Scenario 1 must serve more than each baseline of the same run: baseline -> target name.
BASELINE_TARGETS = {
    "inline_axum": "scenario 1 faster than the inline axum design",
    "lean_axum": "scenario 1 ahead of lean axum",
}


def add_ratios(report):
    """Every row's requests/s and p99 over the floor's (admitted requests for the open
    loop)."""
    floor = report.floor
    for s in report.scenarios + report.extra + report.baselines + [floor]:
        s.rps_share_of_floor = ratio(s.headline_rps(), floor.rps)
        s.p99_over_floor_p99 = ratio(s.headline_p99(), floor.p99_ms)


def versus(report, name):
    """Scenario 1 over the baseline `name` of the same run, overall and by round."""
    s1, base = report.scenario("s1_users_me"), report.baseline(name)
    if not s1 or not base:
        return None
    per_round = [ratio(r.figures["s1_users_me"].rps, r.figures[name].rps)
                 for r in report.rounds]
    return Versus(baseline=name, s1_rps=s1.rps, base_rps=base.rps,
                  rps_ratio=ratio(s1.rps, base.rps), s1_p99_ms=s1.p99_ms,
                  base_p99_ms=base.p99_ms, p99_ratio=ratio(s1.p99_ms, base.p99_ms),
                  round_rps_ratios=per_round,
                  rounds_won=sum(1 for x in per_round if x is not None and x > 1))


def five_xx_check(s):
    """A scenario is clean when no answer was a 5xx other than 503. Where statuses were
    counted per code (by the generator, or by the server's
    `bulkhead_http_server_errors_total`), that is exact; where only the server's status
    classes are known, any 5xx is reported as unverified rather than passed."""
    counts = s.status_counts or s.server_status_classes or {}
    bad = {(k + " (class only)" if k == "5xx" else k): v for k, v in counts.items()
           if k.startswith("5") and k != "503" and v}
    return (not bad), bad


def scenario1_checks(report):
    s1, floor = report.scenario("s1_users_me"), report.floor
    if not s1:
        return []
    share = ratio(s1.rps, floor.rps)
    r = ratio(s1.p99_ms, floor.p99_ms)
    checks = [
        TargetCheck(f"scenario 1 rps >= {TARGET_RPS_SHARE} x floor",
                    share is not None and share >= TARGET_RPS_SHARE,
                    f"{fmt(s1.rps, 0)} / {fmt(floor.rps, 0)} = {share}"),
        TargetCheck(f"scenario 1 p99 <= {TARGET_P99_RATIO} x floor p99",
                    r is not None and r <= TARGET_P99_RATIO,
                    f"{s1.p99_ms:.2f} ms / {floor.p99_ms:.2f} ms = {r}")]
    for name, target in BASELINE_TARGETS.items():
        vs = report.versus.get(name)
        if vs:
            checks.append(TargetCheck(
                target, vs.s1_rps > vs.base_rps,
                f"{fmt(vs.s1_rps, 0)} / {fmt(vs.base_rps, 0)} req/s = {vs.rps_ratio}; "
                f"p99 {vs.s1_p99_ms:.2f} ms / {vs.base_p99_ms:.2f} ms = {vs.p99_ratio}"))
    return checks


def overload_checks(s5):
    p, rp = s5.admitted_p99_ms, s5.rejected_p99_ms
    errs = sum((s5.client_errors or {}).values())
    ok = (not s5.other_statuses and errs == 0
          and (s5.rejected == 0 or (rp is not None and rp < TARGET_REJECTED_P99_MS))
          and (s5.rejected > 0 or (p is not None and p < TARGET_OVERLOAD_ADMITTED_P99_MS)))
    growth = s5.rss_settled_mb - s5.sample.rss_before_mb
    return [
        TargetCheck(f"overload: admitted p99 < {TARGET_OVERLOAD_ADMITTED_P99_MS:.0f} ms",
                    p is not None and p < TARGET_OVERLOAD_ADMITTED_P99_MS,
                    f"admitted p99 {p} ms ({s5.admitted} admitted)"),
        TargetCheck(f"overload: excess answered 503/429 within "
                    f"{TARGET_REJECTED_P99_MS:.0f} ms", ok,
                    f"{s5.rejected} rejected (p99 {rp} ms) of {s5.sent} sent "
                    f"(offered {s5.offered_rps * s5.duration_s}); "
                    f"other statuses {s5.other_statuses or 'none'}; client errors {errs}"),
        TargetCheck(f"overload: memory flat (growth <= {TARGET_MEMORY_FLAT_MB:.0f} MB)",
                    growth <= TARGET_MEMORY_FLAT_MB,
                    f"RSS {s5.sample.rss_before_mb} MB before, peak "
                    f"{s5.sample.rss_peak_mb} MB, {s5.rss_settled_mb} MB after")]


def check_targets(report):
    checks = scenario1_checks(report) if report.floor else []
    s5 = report.scenario("s5_overload")
    if s5:
        checks += overload_checks(s5)
    bad_all = {}
    for s in report.scenarios + report.extra:
        ok, bad = five_xx_check(s)
        if not ok:
            bad_all[s.name] = bad
    if report.scenarios:
        checks.append(TargetCheck("no 5xx but the contract's 503 in any scenario",
                                  not bad_all, json.dumps(bad_all) if bad_all else "none"))
    mem = report.memory_100k
    if mem:
        checks.append(TargetCheck(
            f"100,000 cached users: RSS < {TARGET_MEMORY_100K_MB:.0f} MB",
            mem.rss_mb < TARGET_MEMORY_100K_MB and mem.cache_entries >= mem.users,
            f"{mem.rss_mb} MB with {int(mem.cache_entries)} entries"))
    return checks
