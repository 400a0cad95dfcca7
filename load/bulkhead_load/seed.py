"""Seeding through the API (users, products) and tokens minted like the service's."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from .config import JWT_SECRET, PRODUCTS_PATH, USER_PASSWORD


def seed_users(client, n, concurrency):
    """Register and log in n users concurrently; returns [(id, email, token)]."""

    def one(i):
        email = f"load-{i:05d}@load.bulkhead.test"
        _, _, body = client.retrying("POST", "/api/v1/users", {
            "email": email, "name": f"Load User {i:05d}", "password": USER_PASSWORD})
        uid = json.loads(body)["id"]
        _, _, body = client.retrying("POST", "/api/v1/auth/token",
                                     {"email": email, "password": USER_PASSWORD})
        return uid, email, json.loads(body)["access_token"]

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(1, n + 1)))


def seed_products(client, admin_token, n, concurrency, stock):
    auth = {"Authorization": f"Bearer {admin_token}"}

    def one(i):
        _, _, body = client.retrying("POST", PRODUCTS_PATH, {
            "sku": f"LOAD-{i:04d}", "name": f"Load product {i:04d}",
            "description": "seeded by load/run", "price_cents": 100 + i,
            "currency": "EUR", "stock": stock}, headers=auth)
        return json.loads(body)["id"]

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(1, n + 1)))


def login(client, email, password):
    _, _, body = client.retrying("POST", "/api/v1/auth/token",
                                 {"email": email, "password": password})
    return json.loads(body)["access_token"]


def mint_token(user_id, role="user", ttl=86400):
    """An HS256 access token exactly as the service issues them (src/auth/jwt.rs), for
    the memory check, where logging 100,000 users in would take far longer than the
    measurement. The service verifies it like any other: same secret, iss, aud, exp."""

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    now = int(time.time())
    header = b64(json.dumps({"typ": "JWT", "alg": "HS256"}, separators=(",", ":")).encode())
    claims = b64(json.dumps({
        "sub": user_id, "role": role, "iss": "bulkhead", "aud": "bulkhead-api",
        "iat": now, "exp": now + ttl, "jti": str(uuid.uuid4())}, separators=(",", ":")).encode())
    signing_input = header + b"." + claims
    sig = b64(hmac.new(JWT_SECRET.encode(), signing_input, hashlib.sha256).digest())
    return (signing_input + b"." + sig).decode()
