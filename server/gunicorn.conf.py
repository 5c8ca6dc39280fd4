"""gunicorn settings for production:

    gunicorn 'server:create_app()' -c server/gunicorn.conf.py

One worker process with many threads: the model, the job queue and the in-memory rate limits live in the process,
and analyses are CPU-bound anyway (DEEPFAKE_WORKERS analysis threads share the cores). Host and port come from
DEEPFAKE_HOST / DEEPFAKE_PORT; without any API key only loopback addresses are accepted.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.cli import check_bind, settings  # noqa: E402

_settings = settings()
bind = [f"{_settings['HOST']}:{_settings['PORT']}"]
workers = 1
worker_class = "gthread"
threads = int(os.environ.get("DEEPFAKE_HTTP_THREADS", "32"))
timeout = 120
graceful_timeout = 30
accesslog = "-"
# No control socket (gunicorn >= 25.1): there is nothing to scale, and several servers on a machine would share it.
control_socket_disable = True


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
