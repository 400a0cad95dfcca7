"""External tools: found on PATH or in ~/.cargo/bin, installed only by
`load/run install-tools`, never as a side effect of a run. Also the release build."""

import importlib.util
import os
import shutil
import subprocess
import sys

from .config import RELEASE, ROOT, log

# name -> (what uses it, how `install-tools` installs it)
TOOLS = {
    "wrk": ("the closed-loop scenarios", ["apt-get", "install", "-y", "wrk"]),
    # native-tls: the default rustls backend needs cmake to build aws-lc, which a plain
    # Debian toolchain lacks; TLS is never used here anyway.
    "oha": ("the open-loop overload scenario",
            ["cargo", "install", "--locked", "oha", "--no-default-features",
             "--features", "native-tls"]),
}
# The servers the opt-in scenarios start (s6_fleet, s7_events): Debian's packages.
SERVICES = {
    "nginx": ("the fleet scenario (s6_fleet)", ["apt-get", "install", "-y", "nginx"]),
    "redis-server": ("the fleet scenario (s6_fleet)",
                     ["apt-get", "install", "-y", "redis-server"]),
    "nats-server": ("the events scenario (s7_events)",
                    ["apt-get", "install", "-y", "nats-server"]),
}
# The events scenario's JetStream subscriber (the harness is standard library otherwise).
PYTHON_MODULES = {"nats": ["pip", "install", "nats-py"]}
BINARIES = ("bulkhead", "bulkhead-floor", "bulkhead-inline-axum", "bulkhead-lean-axum")


def find_tool(name):
    # nginx lives in /usr/sbin, which a non-root PATH may lack.
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path:
        return path
    cargo_bin = os.path.join(os.path.expanduser("~"), ".cargo", "bin", name)
    return cargo_bin if os.access(cargo_bin, os.X_OK) else None


def install_tools():
    """`load/run install-tools`: installs each missing tool, says what it did."""
    for name, (_, argv) in {**TOOLS, **SERVICES}.items():
        path = find_tool(name)
        if path:
            log(f"{name}: {path}")
            continue
        log(f"{name} is missing: {' '.join(argv)}"
            + (" (a few minutes)" if argv[0] == "cargo" else ""))
        if argv[0] == "apt-get":
            subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(argv, check=True)
        if not find_tool(name):
            sys.exit(f"{name} is still missing after: {' '.join(argv)}")
    if not find_tool("psql"):
        log("psql is missing too: apt-get install -y postgresql-client")
    for module, argv in PYTHON_MODULES.items():
        if importlib.util.find_spec(module) is None:
            log(f"python module {module} is missing: {' '.join(argv)}")
            subprocess.run([sys.executable, "-m", *argv], check=True)
        else:
            log(f"python module {module}: present")


def require_services(names):
    """The paths of the servers an opt-in scenario starts; exits naming the missing."""
    missing = [n for n in names if not find_tool(n)]
    if missing:
        uses = "; ".join(f"{n} for {SERVICES[n][0]}" for n in missing)
        sys.exit(f"missing: {uses}. Install them with: load/run install-tools")
    return {n: find_tool(n) for n in names}


def require_tools(names):
    """The paths of `names`; exits naming every missing tool and the install step."""
    missing = [n for n in names if not find_tool(n)]
    if not find_tool("psql"):
        sys.exit("psql is missing (apt-get install -y postgresql-client)")
    if missing:
        uses = "; ".join(f"{n} for {TOOLS[n][0]}" for n in missing)
        sys.exit(f"missing: {uses}. Install them with: load/run install-tools")
    return {n: find_tool(n) for n in names}


def build(skip, only_service=False):
    # Opt-in scenarios alone need Bulkhead, and the gateway ones the floor as upstream.
    binaries = BINARIES[:2] if only_service else BINARIES
    packages = [arg for b in binaries for arg in ("-p", b)]
    if skip:
        log("--skip-build: using the binaries in target/release as they are")
    else:
        log(f"cargo build --release {' '.join(packages)}")
        subprocess.run(["cargo", "build", "--release", *packages], cwd=ROOT, check=True)
    for b in binaries:
        if not os.access(os.path.join(RELEASE, b), os.X_OK):
            sys.exit(f"{b} was not built in {RELEASE}")


def git(*args):
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return ""
