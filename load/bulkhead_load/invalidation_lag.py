"""Invalidation lag over N user changes (issue 12, README "Running a fleet").

    cd load && python3 -m bulkhead_load.invalidation_lag [--bin PATH] [--changes 1000]

Two instances of the service on one fresh database; every change is a status change
made through A (`POST /api/v1/users/{id}/status`, alternating active/deactivated over ten
users, one at a time), and each instance's `bulkhead_cache_invalidation_lag_seconds`
histogram (commit to eviction, from the notification's timestamp) gives p50/p99,
interpolated linearly inside the histogram's buckets (so within a bucket's width: 0.25 ms
below 1 ms, 1 ms to 3 ms, 15 ms between 10 and 25 ms). Standalone: not part of `load/run`
(`load/run --only s6_fleet` measures it through nginx over three). Python 3 standard
library only; needs psql and Postgres on 127.0.0.1:5432.
"""
import argparse
import http.client, json, os, socket, subprocess, time, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN, N = os.path.join(ROOT, "target", "release", "bulkhead"), 1000
DB = f"bulkhead_lag_{os.getpid()}"
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qAt", "-c"]
SECRET = "lag-measurement-secret-lag-measurement-01"

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def req(port, method, path, body=None, token=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"content-type": "application/json"}
    if token: h["authorization"] = "Bearer " + token
    c.request(method, path, json.dumps(body) if body is not None else None, h)
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, data

def start(port):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD") and k != "DATABASE_URL"}
    env.update({
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
        "BULKHEAD__SERVER__BIND": f"127.0.0.1:{port}", "BULKHEAD__SERVER__WORKERS": "1",
        "BULKHEAD__LOG__LEVEL": "error", "BULKHEAD__AUTH__JWT_SECRET": SECRET,
        "BULKHEAD__AUTH__ARGON2_MEMORY_KIB": "256", "BULKHEAD__AUTH__ARGON2_ITERATIONS": "1",
        "BULKHEAD__AUTH__BOOTSTRAP_ADMIN_EMAIL": "admin@lag.test",
        "BULKHEAD__AUTH__BOOTSTRAP_ADMIN_PASSWORD": "admin-password-1",
        "BULKHEAD__RATE_LIMITS__ENABLED": "false",
    })
    p = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if req(port, "GET", "/ready")[0] == 200 and b"bulkhead_invalidation_listener_connected 1" in req(port, "GET", "/metrics")[1]:
                return p
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("instance not ready")

def buckets(port, kind):
    text = req(port, "GET", "/metrics")[1].decode()
    out = []
    for line in text.splitlines():
        pre = f'bulkhead_cache_invalidation_lag_seconds_bucket{{kind="{kind}",le="'
        if line.startswith(pre):
            le, v = line[len(pre):].split('"} ')
            out.append((float("inf") if le == "+Inf" else float(le), float(v)))
    return sorted(out)

def quantile(b, q):
    total = b[-1][1]; rank = q * total; prev_le, prev_c = 0.0, 0.0
    for le, c in b:
        if c >= rank:
            if le == float("inf"): return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c

def main():
    subprocess.run(PSQL + [f"CREATE DATABASE {DB}"], check=True)
    procs = []
    try:
        a_port, b_port = free_port(), free_port()
        procs.append(start(a_port)); procs.append(start(b_port))
        st, body = req(a_port, "POST", "/api/v1/auth/token", {"email": "admin@lag.test", "password": "admin-password-1"})
        admin = json.loads(body)["access_token"]
        users = []
        for i in range(10):
            st, body = req(a_port, "POST", "/api/v1/users", {"email": f"u{i}-{uuid.uuid4().hex[:8]}@lag.test", "name": "Lag", "password": "password-123"})
            users.append([json.loads(body)["id"], "active"])
        before_b = buckets(b_port, "user"); before_a = buckets(a_port, "user")
        t0 = time.time()
        for i in range(N):
            u = users[i % len(users)]
            to = "deactivated" if u[1] == "active" else "active"
            st, _ = req(a_port, "POST", f"/api/v1/users/{u[0]}/status", {"status": to}, admin)
            assert st == 200, st
            u[1] = to
        elapsed = time.time() - t0
        time.sleep(1.0)
        for name, port, before in (("B (other instance)", b_port, before_b), ("A (writer)", a_port, before_a)):
            after = buckets(port, "user")
            base = dict(before)
            diff = [(le, c - base.get(le, 0.0)) for le, c in after]
            print(f"{name}: {diff[-1][1]:.0f} notifications; lag p50 {quantile(diff, 0.5)*1000:.3f} ms, "
                  f"p99 {quantile(diff, 0.99)*1000:.3f} ms, max bucket <= "
                  f"{next(le for le, c in diff if c >= diff[-1][1])*1000:.2f} ms")
            print("   buckets (le ms: count):", ", ".join(f"{le*1000:g}:{c:.0f}" for le, c in diff if c))
        print(f"{N} changes through A in {elapsed:.2f} s ({N/elapsed:.0f}/s, sequential)")
    finally:
        for p in procs:
            p.kill(); p.wait()
        subprocess.run(PSQL + [f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"])

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="invalidation lag over N user changes")
    ap.add_argument("--bin", default=BIN, help="the bulkhead binary (default target/release/bulkhead)")
    ap.add_argument("--changes", type=int, default=N)
    args = ap.parse_args()
    BIN, N = args.bin, args.changes
    main()
