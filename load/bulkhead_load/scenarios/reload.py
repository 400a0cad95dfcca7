"""reload (opt-in): SIGHUP with a lowered quota under s1-like load.

A server of its own reads the user quota from a configuration file (`--config`; the
harness's environment override of that key is left out, since the environment wins over
the file). Under 16 connections of `GET /users/me` over the seeded users (wrk, statuses
counted), the file is rewritten with a quota that binds and the server gets SIGHUP. A
probe (the admin, one request after another on its own connection) reads
`X-RateLimit-Limit` of every answer: the time from the SIGHUP to the first answer that
carries the new quota is the reload latency (the last answer with the old one is the
lower bound). Failed requests: every non-2xx answer other than the expected 429s, and
every socket error.
"""

import os
import signal
import threading
import time

from ..client import Client, free_port, wait_until
from ..config import ADMIN_EMAIL, ADMIN_PASSWORD, ME_PATH, RELEASE, log
from ..generators import summarize_wrk, wrk
from ..procs import Server, bulkhead_env
from ..seed import login
from . import scenario

OLD_QUOTA, NEW_QUOTA, WINDOW_S = 1_000_000_000, 30, 60
CONNECTIONS = 16


def config_text(quota):
    return f"[rate_limits.user]\nquota = {quota}\nwindow_secs = {WINDOW_S}\n"


def first_change(answers, t_signal, old):
    """From the probe's [(receipt time, X-RateLimit-Limit)]: (seconds from `t_signal`
    to the first answer received after it that no longer carries `old`, seconds to the
    last answer that still did), None where there is none."""
    after = [(t, v) for t, v in answers if t >= t_signal]
    new = next((t for t, v in after if v != old), None)
    last_old = max((t for t, v in after if v == old and (new is None or t <= new)),
                   default=None)
    return (None if new is None else new - t_signal,
            None if last_old is None else last_old - t_signal)


def probe(port, token, stop, out):
    client = Client(port)
    auth = {"Authorization": f"Bearer {token}"}
    while not stop.is_set():
        status, hdrs, _ = client.request("GET", ME_PATH, headers=auth, timeout=5)
        limit = {k.lower(): v for k, v in hdrs.items()}.get("x-ratelimit-limit")
        out.append((time.time(), limit, status))


@scenario("reload", opt_in=True)
def reload(run):
    st = run.st
    path = os.path.join(st.out, "reload.toml")
    with open(path, "w") as f:
        f.write(config_text(OLD_QUOTA))
    port = free_port()
    env = bulkhead_env(st, port, False)
    env.pop("BULKHEAD__RATE_LIMITS__USER__QUOTA")  # from the file, which a reload re-reads
    srv = Server("bulkhead (reload)", [os.path.join(RELEASE, "bulkhead"), "--config", path,
                                       "serve"], env, port,
                 os.path.join(st.out, "bulkhead-reload.log"))
    try:
        wait_until(port, srv.proc, "/ready", "bulkhead (reload)")
        args = ["mode=me", f"path={ME_PATH}", f"tokens={run.tokens_file}"]
        wrk(st, port, max(st.warmup, 2), args, connections=CONNECTIONS)  # caches
        admin = login(Client(port), ADMIN_EMAIL, ADMIN_PASSWORD)
        result = {}

        def load():
            result["wrk"] = wrk(st, port, st.duration, args, count_status=True,
                                connections=CONNECTIONS, label="reload")

        stop, answers = threading.Event(), []
        loader = threading.Thread(target=load, daemon=True)
        prober = threading.Thread(target=probe, args=(port, admin, stop, answers),
                                  daemon=True)
        loader.start()
        prober.start()
        time.sleep(st.duration / 3)
        with open(path, "w") as f:
            f.write(config_text(NEW_QUOTA))
        t_signal = time.time()
        os.kill(srv.pid, signal.SIGHUP)
        log(f"reload: SIGHUP with the user quota {OLD_QUOTA} -> {NEW_QUOTA} per "
            f"{WINDOW_S} s under {CONNECTIONS} connections")
        loader.join(st.duration + 120)
        stop.set()
        prober.join(10)
        _, _, metrics = Client(port).request("GET", "/metrics")
    finally:
        srv.stop()
    w = summarize_wrk(result["wrk"])
    statuses = w.status_counts or {}
    failed = {k: v for k, v in statuses.items() if not k.startswith("2") and k != "429"}
    errors = sum(w.socket_errors.values())
    probe_failed = sum(1 for _, _, s in answers if not (200 <= s < 300 or s == 429))
    # The limit the probe saw before the signal (the header carries the policy's burst,
    # the quota here) is the old one.
    old = next((v for t, v, _ in reversed(answers) if t < t_signal), None)
    to_new, last_old = first_change([(t, v) for t, v, _ in answers], t_signal, old)
    applied = [line for line in metrics.decode().splitlines()
               if line.startswith("bulkhead_config_reloads_total")]
    data = {"connections": CONNECTIONS, "duration_s": st.duration,
            "old_quota": OLD_QUOTA, "new_quota": NEW_QUOTA, "window_s": WINDOW_S,
            "statuses": statuses, "failed": failed, "socket_errors": w.socket_errors,
            "rps": w.rps, "p99_ms": w.p99_ms, "probe_answers": len(answers),
            "probe_failed": probe_failed, "limit_header_before": old,
            "limit_header_after": answers[-1][1] if answers else None,
            "sighup_to_new_quota_ms": None if to_new is None else round(to_new * 1000, 2),
            "sighup_to_last_old_answer_ms":
                None if last_old is None else round(last_old * 1000, 2),
            "reload_metrics": applied}
    log(f"  {data}")
    run.report.studies["reload"] = {"data": data, "markdown": [
        f"SIGHUP lowering the user quota from {OLD_QUOTA:,} to {NEW_QUOTA} per "
        f"{WINDOW_S} s, under {CONNECTIONS} connections of `GET /users/me` "
        f"({w.rps:,.0f} req/s over {st.duration} s, p99 {w.p99_ms:.2f} ms):", "",
        "| SIGHUP to first answer under the new quota | last answer under the old | "
        "failed (non-2xx but 429) | socket errors | statuses |", "|---|---|---|---|---|",
        f"| {data['sighup_to_new_quota_ms']} ms | {data['sighup_to_last_old_answer_ms']} "
        f"ms | {sum(failed.values()) + probe_failed} | {errors} | "
        f"{', '.join(f'{k}: {v}' for k, v in statuses.items())} |", "",
        f"Server: {'; '.join(applied) or 'no reload metrics'}."]}
