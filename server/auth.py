"""API keys: made by the CLI, stored as SHA-256 hashes, presented as `Authorization: Bearer <key>` or `X-API-Key`.

Keys are long random secrets, so a plain SHA-256 (no slow hash) is the right way to store them. While no key
exists the API is open, and the server refuses to listen on anything but loopback (see `server.cli`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import socket

from flask import g, request

from .db import Database
from .records import ApiKey

KEY_PREFIX = "dfk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(db: Database, name: str) -> tuple[str, str]:
    """Make and store a new key; return (key id, the key itself: shown once, never stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = secrets.token_hex(4)
    db.insert_api_key(key_id, name, hash_key(key), key[: len(KEY_PREFIX) + 6])
    return key_id, key


def presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("X-API-Key", "").strip() or None


def current_key(db: Database) -> ApiKey | None:
    """The valid API key of this request (looked up once per request), or None."""
    if "api_key" not in g:
        key = presented_key()
        g.api_key = db.api_key_by_hash(hash_key(key)) if key else None
    return g.api_key


def client_identity(db: Database) -> str:
    """What rate limits count by: the API key when a valid one is given, else the client's address."""
    key = current_key(db)
    return key.client if key else f"ip:{request.remote_addr}"


def is_loopback_host(host: str) -> bool:
    """Whether every address `host` names is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)
