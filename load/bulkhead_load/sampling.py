"""What the server did over a scenario: CPU, RSS and context switches from /proc, and
its own /metrics (status classes, latency histograms, bulkhead refusals)."""

import os
import resource
import threading
import time

from .client import Client
from .results import Sample

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    # Fields after the command name: state is field 3, utime 14, stime 15.
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def context_switches(pid):
    """Voluntary and involuntary context switches of every thread of `pid` so far."""
    total = [0, 0]
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return total
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total[0] += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        total[1] += int(line.split()[1])
        except OSError:
            pass
    return total


class Sampler:
    """CPU delta and peak RSS of one process over one scenario. VmHWM is the lifetime
    peak, so the per-scenario peak comes from sampling VmRSS."""

    def __init__(self, pid, interval=0.1):
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.rss_before_kb = status_kb(self.pid, "VmRSS")
        self.cpu0 = cpu_seconds(self.pid)
        self.cs0 = context_switches(self.pid)
        self.gen0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.t0 = time.time()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS"))
            except OSError:
                return
            self._stop.wait(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()
        self.wall = time.time() - self.t0
        self.cpu = cpu_seconds(self.pid) - self.cpu0
        cs1 = context_switches(self.pid)
        self.cs = [cs1[0] - self.cs0[0], cs1[1] - self.cs0[1]]
        gen1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        # The load generator ran as our child and has been waited for: its CPU is here.
        self.gen_cpu = (gen1.ru_utime - self.gen0.ru_utime) + (gen1.ru_stime - self.gen0.ru_stime)
        self.rss_after_kb = status_kb(self.pid, "VmRSS")
        self.hwm_kb = status_kb(self.pid, "VmHWM")
        return False

    def sample(self):
        return Sample(
            server_cpu_s=round(self.cpu, 2),
            server_cpu_cores=round(self.cpu / self.wall, 2) if self.wall else None,
            generator_cpu_s=round(self.gen_cpu, 2),
            server_context_switches={"voluntary": self.cs[0], "involuntary": self.cs[1]},
            rss_before_mb=round(self.rss_before_kb / 1024, 1),
            rss_after_mb=round(self.rss_after_kb / 1024, 1),
            rss_peak_mb=round(max(self.peak_kb, self.rss_after_kb) / 1024, 1),
            vm_hwm_mb=round(self.hwm_kb / 1024, 1),
        )


# ---------------------------------------------------------------------------------------
# Server metrics: status classes per route, counted by the server itself at no cost to
# the generator. The only way to see 5xx in scenarios that do not count statuses in wrk.

SCRAPED = ("bulkhead_http_requests_total{", "bulkhead_http_request_duration_seconds_bucket{",
           "bulkhead_bulkhead_queue_wait_seconds_bucket{", "bulkhead_bulkhead_rejected_total{",
           "bulkhead_http_server_errors_total{")


def scrape(port):
    try:
        status, _, body = Client(port).request("GET", "/metrics", timeout=5)
    except OSError:
        return {}
    if status != 200:
        return {}
    out = {}
    for line in body.decode().splitlines():
        if line.startswith(SCRAPED):
            labels, value = line.rsplit(" ", 1)
            out[labels] = float(value)
        elif line.startswith("bulkhead_cache_entries"):
            out["cache_entries"] = float(line.rsplit(" ", 1)[1])
    return out


def gauge(port, name):
    """The value of an unlabelled metric (or the first series of a labelled one) on the
    server's /metrics; 0.0 when it is absent."""
    _, _, body = Client(port).request("GET", "/metrics", timeout=5)
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def server_quantiles(before, after, route, qs=(0.5, 0.99), status=None,
                     metric="bulkhead_http_request_duration_seconds", label="route"):
    """Server-side latency of `route` over a scenario from the histogram's bucket deltas:
    the upper bound of the bucket holding each quantile (coarse: the configured buckets).
    Time from the request entering the middleware to its response, i.e. without the time
    spent waiting for a connection, in the kernel or in the generator."""
    buckets = {}
    for key, value in after.items():
        if (key.startswith(f"{metric}_bucket{{")
                and f'{label}="{route}"' in key
                and (status is None or f'status="{status}"' in key)):
            le = key.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = buckets.get(le, 0.0) + value - before.get(key, 0.0)
    if not buckets:
        return {}
    order = sorted(buckets.items(), key=lambda kv: float("inf") if kv[0] == "+Inf"
                   else float(kv[0]))
    total = order[-1][1]
    out = {"count": int(total)}
    for q in qs:
        for le, cum in order:
            if total and cum >= q * total:
                out[f"p{round(q * 100, 1):g}_ms_at_most"] = (
                    None if le == "+Inf" else round(float(le) * 1000, 3))
                break
    return out


def status_classes(before, after):
    """Answers by status class over a scenario, from the server's counters. Its 5xx are
    given by exact code ("503": n) when the server counts them so
    (`bulkhead_http_server_errors_total`) and the codes account for every one; a server
    without that counter (an older build) leaves them as the class "5xx"."""
    classes, codes = {}, {}
    for key, value in after.items():
        delta = value - before.get(key, 0.0)
        if delta <= 0 or 'route="/metrics"' in key:
            continue
        if key.startswith("bulkhead_http_requests_total{"):
            cls = key.split('status="', 1)[1].split('"', 1)[0]
            classes[cls] = classes.get(cls, 0) + int(delta)
        elif key.startswith("bulkhead_http_server_errors_total{"):
            code = key.split('code="', 1)[1].split('"', 1)[0]
            codes[code] = codes.get(code, 0) + int(delta)
    if classes.get("5xx") and sum(codes.values()) == classes["5xx"]:
        del classes["5xx"]
        classes.update(codes)
    return classes


def rejected_by_reason(before, after, bulkhead="db_read"):
    return {k.split('reason="', 1)[1].split('"', 1)[0]: int(v - before.get(k, 0.0))
            for k, v in after.items()
            if k.startswith("bulkhead_bulkhead_rejected_total{")
            and f'bulkhead="{bulkhead}"' in k}
