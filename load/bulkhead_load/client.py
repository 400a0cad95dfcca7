"""A small HTTP client for seeding and probes (load comes from wrk and oha)."""

import http.client
import json
import socket
import threading
import time

from .config import HOST


class Client:
    """One keep-alive connection per thread."""

    def __init__(self, port):
        self.port = port
        self.local = threading.local()

    def request(self, method, path, body=None, headers=None, timeout=30):
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
                self.local.conn = conn
            try:
                conn.request(method, path, body=data, headers=headers)
                res = conn.getresponse()
                return res.status, dict(res.getheaders()), res.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def retrying(self, method, path, body=None, headers=None, ok=(200, 201), tries=30):
        """Seeding must not fail on the service's own backpressure: 429 and 503 say when
        to come back (Retry-After), so wait and try again."""
        status, hdrs, data = 0, {}, b""
        for _ in range(tries):
            status, hdrs, data = self.request(method, path, body, headers)
            if status in ok:
                return status, hdrs, data
            if status in (429, 503):
                retry = hdrs.get("Retry-After") or hdrs.get("retry-after") or "0.2"
                time.sleep(min(float(retry), 2.0))
                continue
            break
        raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")


def wait_until(port, proc, path, name, headers=None, timeout=90):
    """Polls `path` until it answers 200 (returns that answer) or `proc` exits or the
    deadline passes (raises, naming `name`)."""
    deadline = time.time() + timeout
    client = Client(port)
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} before answering")
        try:
            status, hdrs, body = client.request("GET", path, headers=headers, timeout=2)
            if status == 200:
                return status, hdrs, body
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"{name}: GET {path} did not answer 200 within {timeout}s")
        time.sleep(0.1)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]
