"""CPU affinity: the overload scenario gives the server and Postgres some CPUs and the
generator the others, so that the generator can send its open-loop rate (on shared CPUs
it cannot, and measures itself). Linux only; Postgres needs root or its own user. The
affinity is restored when the scenario ends and on any exit of the runner."""

import os

from .procs import CLEANUP


def cpu_list(cpus):
    return ",".join(str(c) for c in sorted(cpus))


def taskset(cpus):
    return ["taskset", "-c", cpu_list(cpus)]


def set_affinity(pid, cpus):
    """Every thread of `pid` (new threads inherit from the thread that spawns them, so
    all existing ones are set). False when the process is gone or not ours."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return False
    ok = True
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:
            pass
        except PermissionError:
            ok = False
    return ok


def postgres_pids():
    """The postmaster and every backend: backends fork from the postmaster, so pinning
    it pins the connections opened later too."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == "postgres":
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


class Pinned:
    """Server (and Postgres) on `server_cpus` for the duration of a `with`, back on every
    CPU after it, and on any exit of the runner (a cleanup hook)."""

    def __init__(self, srv_pid, server_cpus, postgres_cpus=None):
        self.srv_pid, self.cpus = srv_pid, set(server_cpus)
        self.pg_cpus = set(postgres_cpus or server_cpus)
        self.all = set(range(os.cpu_count() or 1))
        self.postgres = "not pinned"

    def restore(self):
        set_affinity(self.srv_pid, self.all)
        for pid in postgres_pids():
            set_affinity(pid, self.all)

    def __enter__(self):
        CLEANUP.hooks.append(self.restore)
        set_affinity(self.srv_pid, self.cpus)
        pids = postgres_pids()
        pinned = [pid for pid in pids if set_affinity(pid, self.pg_cpus)]
        self.postgres = (f"{len(pinned)} of {len(pids)} processes pinned to CPUs "
                         f"{cpu_list(self.pg_cpus)}" if pids
                         else "no local postgres processes seen")
        return self

    def __exit__(self, *exc):
        self.restore()
        CLEANUP.hooks.remove(self.restore)
