"""gunicorn settings for production:

    gunicorn 'server:create_app()' -c server/gunicorn.conf.py

One worker process with many threads: the model, the job queue and the in-memory rate limits live in the process,
and analyses are CPU-bound anyway (DEEPFAKE_WORKERS analysis threads share the cores). Host and port come from
DEEPFAKE_HOST / DEEPFAKE_PORT; without any API key only loopback addresses are accepted.
"""

import os
import sys

import gunicorn.util

import server.httpworker
from server.cli import check_bind, settings, url_host
from server.errors import protocol_error

_settings = settings()
bind = [f"{url_host(_settings.host)}:{_settings.port}"]
workers = 1
# gthread that gives a connection a thread only once its request head is in (server/httpworker.py): slow
# clients are shed at DEEPFAKE_HTTP_HEAD_TIMEOUT_S, never hold a thread
worker_class = "server.httpworker.HeadFirstWorker"
server.httpworker.HEAD_TIMEOUT_S = float(_settings.http_head_timeout_s)
threads = int(os.environ.get("DEEPFAKE_HTTP_THREADS", "32"))
timeout = 120
keepalive = 2  # seconds an idle keep-alive connection is kept (in the poller, without a thread)
graceful_timeout = 30
accesslog = "-"
# No control socket (gunicorn >= 25.1): there is nothing to scale, and several servers on a machine would share it.
control_socket_disable = True
# What gunicorn itself refuses before the app sees a request (414, 431 and 400 answers, JSON like every error).
limit_request_line = 8190  # bytes of "METHOD /path?query HTTP/1.1": room for long post URLs in query strings
limit_request_fields = 100  # headers per request
limit_request_field_size = 8190  # bytes per header


def _write_json_error(sock, status_int, reason, mesg):
    """gunicorn's answer to a request it refuses itself, as JSON instead of its HTML page."""
    body = protocol_error(status_int, f"{reason}: {mesg}" if mesg else reason)
    head = f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
    gunicorn.util.write_nonblock(sock, (head + f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body)


# gunicorn's workers call util.write_error for these answers; there is no setting for their format.
gunicorn.util.write_error = _write_json_error


def on_starting(server):
    for address in server.cfg.bind:
        if address.startswith(("unix:", "fd://")):
            continue
        host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
        problem = check_bind(host.strip("[]"))
        if problem:
            server.log.error(problem)
            sys.exit(2)


def worker_exit(server, worker):
    from server import shutdown

    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        shutdown(app)
