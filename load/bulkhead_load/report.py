"""The Markdown report: one function per section, `markdown` puts them together."""

import json

from .fmt import fmt, ratio

BASELINE_LABELS = {"inline_axum": "inline axum", "lean_axum": "lean axum", "s1_users_me": "s1"}
BASELINE_NOTES = {
    "inline_axum": "load/inline-axum on the same database (JWT verified on every request, "
                   "governor keyed limiter, moka cache, deadpool-postgres, request id and "
                   "rate-limit headers)",
    "lean_axum": "load/lean-axum on the same database (jsonwebtoken, governor keyed "
                 "limiter, moka cache, the user's JSON serialized per request; no request "
                 "id or rate-limit headers)",
}


def header(report):
    m = report.meta
    dirty = " (dirty)" if m.dirty else ""
    if not report.floor and report.studies:  # opt-in scenarios alone
        return [f"# Bulkhead load report {m.timestamp}: {', '.join(report.studies)}", "",
                f"commit `{m.commit}`{dirty} on {m.host}, {m.cores} cores. Load average "
                f"at start: {m.loadavg_start}, at the end: {m.loadavg_end}.", ""]
    if not report.floor:  # the memory check alone
        return [f"# Bulkhead memory check {m.timestamp}", "",
                f"commit `{m.commit}`{dirty} on {m.host}, {m.cores} cores; {m.workers} "
                "server workers.", ""]
    return [f"# Bulkhead load report {m.timestamp}", "",
            f"commit `{m.commit}`{dirty} on {m.host}, {m.cores} cores; {m.workers} server "
            f"workers; wrk {m.threads} threads, {m.connections} connections, "
            f"{m.duration_s} s per scenario after {m.warmup_s} s warm-up; {m.users} users, "
            f"{m.products} products. Access log {'on' if m.access_log else 'off'} for the "
            "scenarios below (when on: JSON lines to a file). Load average at start: "
            f"{m.loadavg_start}."
            + (f" Server configuration overrides: {m.server_env}." if m.server_env else ""),
            ""]


def statuses_cell(s):
    if s.status_counts:
        return ", ".join(f"{k}: {v}" for k, v in s.status_counts.items())
    classes = s.server_status_classes
    if classes:
        return ", ".join(f"{k}: {v}" for k, v in sorted(classes.items()))
    return f"non-2xx: {s.wrk.non_2xx_3xx}"


def main_table(report):
    out = ["| scenario | req/s | x floor | p50 ms | p99 ms | p99.9 ms | p99 / floor p99 "
           "| statuses | server CPU (cores) | CPU µs/req | peak RSS MB |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in [report.floor] + report.baselines + report.scenarios + report.extra:
        rps, p50, p99, p999 = s.headline()
        out.append(
            f"| {s.name}: {s.title} | {rps} | {fmt(s.rps_share_of_floor)} "
            f"| {fmt(p50)} | {fmt(p99)} | {fmt(p999)} | {fmt(s.p99_over_floor_p99)} "
            f"| {statuses_cell(s)} | {fmt(s.sample.server_cpu_cores)} "
            f"| {fmt(s.cpu_us_per_request, 1)} | {fmt(s.sample.rss_peak_mb, 1)} |")
    return out + [""]


def body_note(report, name):
    bm = report.baseline_bodies.get(name)
    if not bm:
        return "a body not compared with Bulkhead's (no GET /users/me on Bulkhead)"
    if bm.same_as_bulkhead:
        return f"byte for byte Bulkhead's body ({bm.bytes} bytes)"
    return f"a {bm.bytes} byte body against Bulkhead's {bm.bulkhead_bytes} (not identical)"


def versus_tables(report):
    out = []
    for name, vs in report.versus.items():
        label = BASELINE_LABELS.get(name, name)
        out += [f"| Bulkhead s1 / {label} | req/s ratio | p99 ratio |", "|---|---|---|",
                f"| {fmt(vs.s1_rps, 0)} / {fmt(vs.base_rps, 0)} req/s; p99 "
                f"{fmt(vs.s1_p99_ms)} / {fmt(vs.base_p99_ms)} ms "
                f"| {fmt(vs.rps_ratio)} | {fmt(vs.p99_ratio)} |", "",
                f"{name} is {BASELINE_NOTES.get(name, name)}, answering "
                f"{body_note(report, name)}; it has no metrics, tracing or access log, "
                "which Bulkhead has.", ""]
    return out


def rounds_table(report):
    rounds = report.rounds
    if len(rounds) <= 1:
        return []
    names = list(rounds[0].figures)  # floor, baselines, s1 in the order they ran
    s1, others = names[-1], names[:-1]
    label = {n: BASELINE_LABELS.get(n, n) for n in names}
    won = "; ".join(f"more than {label[n]} in {vs.rounds_won} of {len(rounds)}"
                    for n, vs in report.versus.items())
    out = [f"Interleaved rounds ({', '.join(label[n] for n in others)}, scenario 1 in "
           f"turn; each system is reported above by its median round): Bulkhead served "
           f"{won}.", "",
           "| round | " + " | ".join(f"{label[n]} req/s (p99 ms)" for n in names)
           + " | " + " | ".join(f"s1 / {label[n]}" for n in reversed(others)) + " |",
           "|---|" + "---|" * (2 * len(names) - 1)]
    for r in rounds:
        f = r.figures
        out.append(f"| {r.round} | "
                   + " | ".join(f"{fmt(f[n].rps, 0)} ({fmt(f[n].p99_ms)})" for n in names)
                   + " | " + " | ".join(fmt(ratio(f[s1].rps, f[n].rps))
                                        for n in reversed(others)) + " |")
    return out + [""]


def overload_section(report):
    s5 = report.scenario("s5_overload")
    if not s5:
        return []
    pin = s5.pinning
    if pin:
        out = [f"Overload ran pinned: the server on CPUs {pin['server_cpus']} "
               f"(Postgres: {pin['postgres']}), generators on CPUs "
               f"{pin['generator_cpus']}. On those CPUs the service sustained "
               f"{fmt(s5.base_rps, 0)} successful req/s closed loop (s5_base); the "
               f"open loop offered {s5.offered_rps:,} req/s and oha sent "
               f"{fmt(s5.sent_rps, 0)} req/s.", ""]
    else:
        out = [f"Overload ran unpinned: the open loop offered {s5.offered_rps:,} req/s "
               f"({s5.base} x {s5.base_rps}) and oha sent {fmt(s5.sent_rps, 0)} req/s.", ""]
    out += ["Overload (open loop) per status:", "",
            "| status | count | p50 ms | p99 ms | p99.9 ms | max ms |",
            "|---|---|---|---|---|---|"]
    for k, v in s5.per_status.items():
        out.append(f"| {k} | {v.count:,} | {fmt(v.p50_ms)} | {fmt(v.p99_ms)} "
                   f"| {fmt(v.p999_ms)} | {fmt(v.max_ms)} |")
    if s5.client_errors:
        out.append(f"| client errors | {json.dumps(s5.client_errors)} | | | | |")
    server_side = server_side_latency(s5)
    if server_side:
        out += ["", server_side]
    out += ["", f"Memory over the overload: RSS {s5.sample.rss_before_mb} MB before, "
            f"{s5.sample.rss_peak_mb} MB peak, {s5.rss_settled_mb} MB 2 s after.", ""]
    return out


def server_side_latency(s5):
    ssl = s5.server_side_latency
    if not ssl:
        return ""
    text = (f"Server-side latency of those requests (its own histogram, bucket upper "
            f"bounds): p50 <= {ssl.get('p50_ms_at_most')} ms, p99 <= "
            f"{ssl.get('p99_ms_at_most')} ms over {ssl['count']:,} requests.")
    for cls, q in (("2xx", s5.server_side_latency_2xx), ("5xx", s5.server_side_latency_5xx)):
        if q:
            text += (f" {cls}: p50 <= {q.get('p50_ms_at_most')} ms, p99 <= "
                     f"{q.get('p99_ms_at_most')} ms over {q['count']:,}.")
    qw = s5.db_read_queue_wait
    if qw:
        text += (f" Of which waiting for a db_read slot: p50 <= {qw.get('p50_ms_at_most')} "
                 f"ms, p99 <= {qw.get('p99_ms_at_most')} ms over {qw['count']:,} queued "
                 f"calls; refused by reason: {s5.db_read_rejected}.")
    return text + (" The difference to the table above is time spent before the server "
                   "read the request (in the generator, the kernel, or waiting for a CPU) "
                   "and after it wrote the response.")


def costs(report):
    out = []
    al = report.access_log_cost
    if al:
        out += [f"Access log cost (scenario 1, same run; means of {al.on_runs} run(s) on "
                f"and {al.off_runs} off): on {fmt(al.on_rps, 0)} req/s p99 "
                f"{fmt(al.on_p99_ms)} ms, {fmt(al.on_cpu_us_per_request, 1)} CPU µs/req; "
                f"off {fmt(al.off_rps, 0)} req/s p99 {fmt(al.off_p99_ms)} ms, "
                f"{fmt(al.off_cpu_us_per_request, 1)} CPU µs/req: the access log costs "
                f"{fmt(al.rps_cost_pct, 1)} % of the throughput.", ""]
    lc = report.lua_count_cost
    if lc:
        out += [f"Cost of counting statuses in wrk Lua (floor, same run): "
                f"{fmt(lc.without_rps, 0)} req/s without, {fmt(lc.with_rps, 0)} with "
                f"({fmt(lc.cost_pct, 1)} %).", ""]
    return out


def pgbench_section(report):
    if not report.pgbench:
        return []
    out = ["pgbench beside the scenarios (same machine, same run, own database, the "
           "scenario's clients and duration):", "",
           "| pgbench | scale | clients | tps | latency avg ms | beside |",
           "|---|---|---|---|---|---|"]
    out += [f"| {p.mode} | {p.scale} | {p.clients} | {fmt(p.tps, 0)} | "
            f"{fmt(p.latency_avg_ms)} | {p.beside} |" for p in report.pgbench]
    out += ["", "| scenario | req/s | pgbench | tps | ratio | note |",
            "|---|---|---|---|---|---|"]
    out += [f"| {r.scenario} | {fmt(r.scenario_rps, 0)} | {r.pgbench} | "
            f"{fmt(r.pgbench_tps, 0)} | {fmt(r.ratio)}x | {r.note} |"
            for r in report.pgbench_ratios]
    return out + [""]


def perf_section(report):
    if not report.perf_s1:
        return []
    return ["Where the server's CPU went in scenario 1 (perf, flat, >= 0.7 %):", "",
            "```", report.perf_s1, "```", ""]


def memory_section(report):
    mem = report.memory_100k
    if not mem:
        return []
    return [f"Memory with {int(mem.cache_entries):,} cached users (capacity "
            f"{mem.cache_capacity:,}): RSS {mem.rss_mb} MB (VmHWM {mem.hwm_mb} MB; "
            f"{mem.rss_idle_mb} MB before the cache was filled; filled in {mem.fill_s} s).",
            ""]


def targets_table(report):
    if not report.targets:
        return []
    return (["| target | result | detail |", "|---|---|---|"]
            + [f"| {t.target} | {'PASS' if t.passed else 'FAIL'} | {t.detail} |"
               for t in report.targets] + [""])


def studies_section(report):
    out = []
    for name, study in report.studies.items():
        out += [f"## {name}", ""] + list(study["markdown"]) + [""]
    return out


def markdown(report):
    if not report.floor:  # the memory check alone, or opt-in scenarios alone
        sections = [header, studies_section, memory_section, targets_table]
    else:
        note = ([f"**Note:** {report.scenario1_note}", ""] if report.scenario1_note
                else [])
        sections = [header, lambda _: note, main_table, versus_tables, rounds_table,
                    overload_section, pgbench_section, costs, perf_section,
                    studies_section, memory_section, targets_table]
    return "\n".join(line for section in sections for line in section(report)).rstrip("\n")
