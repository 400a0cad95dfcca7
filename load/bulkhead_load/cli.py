"""`load/run`: parse, check the tools, build, run, report, clean up."""

import datetime
import json
import os
import signal
import socket
import subprocess

from . import config
from .config import LOAD, ROOT, log
from .procs import CLEANUP, on_signal
from .report import markdown
from .results import Meta, Report, to_json
from .runs import full_run, memory_run
from .scenarios import NEEDS, check_only, selected, standalone
from .targets import BASELINE_TARGETS, add_ratios, check_targets, versus
from .tools import build, git, install_tools, require_services, require_tools


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def meta(st, wrk):
    return Meta(
        timestamp=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        commit=git("rev-parse", "--short", "HEAD"),
        branch=git("rev-parse", "--abbrev-ref", "HEAD"),
        dirty=bool(git("status", "--porcelain", "--untracked-files=no")),
        host=socket.gethostname(), cores=os.cpu_count() or 1, loadavg_start=loadavg(),
        workers=st.workers, threads=st.threads, connections=st.connections,
        duration_s=st.duration, warmup_s=st.warmup,
        users=st.memory_users if st.memory else st.users, products=st.products,
        access_log=st.access_log, quick=st.quick, server_env=st.server_env,
        wrk=subprocess.run([wrk, "-v"], capture_output=True,
                           text=True).stdout.splitlines()[0:1])


def measure_all(st, report):
    if st.memory:
        report.memory_100k = memory_run(st)
        return
    full_run(st, report)
    if not report.floor:  # opt-in scenarios alone: nothing to take ratios of
        return
    add_ratios(report)
    report.versus = {name: vs for name in BASELINE_TARGETS
                     if (vs := versus(report, name)) is not None}
    if st.with_memory:
        CLEANUP.run()
        CLEANUP.done = False
        report.memory_100k = memory_run(st)


def main(argv=None):
    args = config.parser().parse_args(argv)
    if args.command == "install-tools":
        install_tools()
        return 0
    st = config.settings(args)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    check_only(st.only)
    alone = standalone(st.only)
    # oha drives only the open-loop overload (s5): a run of other scenarios needs wrk.
    needs_oha = not st.memory and not alone and (not st.only or "s5_overload" in st.only)
    tools = require_tools(["wrk", "oha"] if needs_oha else ["wrk"])
    st.wrk, st.oha = tools["wrk"], tools.get("oha")
    if not st.memory:
        st.services = require_services(sorted({n for s in selected(st.only)
                                               for n in NEEDS[s]}))
    st.out = os.path.join(LOAD, "results", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(st.out, exist_ok=True)
    try:
        build(st.skip_build, only_service=alone)
        report = Report(meta=meta(st, st.wrk))
        measure_all(st, report)
        report.meta.loadavg_end = loadavg()
        if report.floor or report.memory_100k:
            report.targets = check_targets(report)
        with open(os.path.join(st.out, "report.json"), "w") as f:
            json.dump(to_json(report), f, indent=2)
        md = markdown(report)
        with open(os.path.join(st.out, "report.md"), "w") as f:
            f.write(md + "\n")
        print(md)
        log(f"report: {os.path.relpath(st.out, ROOT)}/report.md and report.json")
    finally:
        CLEANUP.run()
    return 0
