"""Command line of the server: run it, run a worker, and manage API keys.

    python -m server [--host HOST] [--port PORT]      serve (threaded WSGI server; gunicorn for production)
    python -m server worker                           a Celery worker (DEEPFAKE_QUEUE=celery, server/celeryapp.py)
    python -m server keys create NAME                 make a key: printed once, stored hashed
    python -m server keys list                        keys with their id, prefix and dates (never the key)
    python -m server keys revoke ID_OR_PREFIX

Settings come from DEEPFAKE_* environment variables; --host and --port override DEEPFAKE_HOST and DEEPFAKE_PORT.
Without any API key the server refuses to listen on anything but a loopback address.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from .config import ConfigError, ServerSettings, database_target, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description="Deepfake checker backend (Flask).")
    parser.add_argument("--host", default=None, help="address to listen on (default: $DEEPFAKE_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $DEEPFAKE_PORT or 8000; 0 picks a free one)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="run the server (the default)")
    commands.add_parser("worker", help="run a Celery worker for DEEPFAKE_QUEUE=celery: loads the model, runs jobs")
    keys = commands.add_parser("keys", help="create, list or revoke API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="make a new key (printed once)")
    create.add_argument("name", help="who or what the key is for, e.g. 'browser-extension'")
    keys.add_parser("list", help="list keys")
    revoke = keys.add_parser("revoke", help="revoke a key by its id or prefix")
    revoke.add_argument("key", metavar="ID_OR_PREFIX")
    return parser


def settings() -> ServerSettings:
    """The settings the environment gives (read when a command starts, never at import)."""
    return load_settings(os.environ)


def open_database():
    from .db import Database

    config = settings()
    return Database(database_target(config, Path(config.data_dir)))


def run_keys(args: argparse.Namespace) -> int:
    from .auth import create_key

    db = open_database()
    if args.action == "create":
        key_id, key = create_key(db, args.name)
        print(key)
        print(f"key {key_id} for {args.name!r} created; it is shown only now: store it safely", file=sys.stderr)
    elif args.action == "list":
        keys = db.list_api_keys()
        if not keys:
            print("no API keys: the API is open and the server only listens on loopback", file=sys.stderr)
        for key in keys:
            state = f"revoked {key.revoked_at}" if key.revoked_at else "active"
            used = key.last_used_at or "never"
            print(f"{key.id}  {key.prefix}…  {key.name}  created {key.created_at}  last used {used}  {state}")
    elif args.action == "revoke":
        if not db.revoke_api_key(args.key):
            print(f"error: no active key {args.key!r}", file=sys.stderr)
            return 1
        print(f"key {args.key} revoked", file=sys.stderr)
    return 0


def check_bind(host: str) -> str | None:
    """Why the server must not listen on `host` (None when it may)."""
    from .auth import is_loopback_host

    if is_loopback_host(host) or open_database().active_api_key_count() > 0:
        return None
    return (
        f"refusing to listen on {host}: no API key exists, so anyone who can reach it could use the API. "
        "Create one with `python -m server keys create NAME`, or listen on 127.0.0.1."
    )


def json_error_handler():
    """werkzeug's request handler, answering the errors of the HTTP layer itself (a request line or header over
    its limits: 414, 431; a malformed request: 400) with JSON like every other error, not an HTML page."""
    from werkzeug.serving import WSGIRequestHandler

    from .errors import protocol_error

    class JsonErrorRequestHandler(WSGIRequestHandler):
        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            body = protocol_error(code, message or self.responses.get(code, ("error",))[0])
            self.log_error("code %d, message %s", code, message)
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)

    return JsonErrorRequestHandler


def url_host(host: str) -> str:
    """`host` as written in a URL or a bind address: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def run_server(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from . import create_app, shutdown

    config = settings()
    host = args.host or config.host
    port = config.port if args.port is None else args.port
    problem = check_bind(host)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    app = create_app({"HOST": host, "PORT": port})
    served = app.extensions["deepfake"].settings
    server = make_server(host.strip("[]"), port, app, threaded=True, request_handler=json_error_handler())
    print(
        f"deepfake checker serving on http://{url_host(host)}:{server.server_port} "
        f"(model {served.model}, data in {served.data_dir})",
        flush=True,
    )

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        shutdown(app)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "keys":
            return run_keys(args)
        if args.command == "worker":
            from .celeryapp import run_worker

            if settings().queue != "celery":
                print("error: python -m server worker needs DEEPFAKE_QUEUE=celery and DEEPFAKE_BROKER_URL", file=sys.stderr)
                return 2
            return run_worker()
        return run_server(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
