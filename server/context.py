"""The running app's services and typed settings, for the code that answers requests (server/api.py,
server/pages.py, server/errors.py): `current_services()`, `current_settings()`."""

from __future__ import annotations

from flask import current_app

from .config import ServerSettings
from .services import Services


def current_services() -> Services:
    return current_app.extensions["deepfake"]


def current_settings() -> ServerSettings:
    return current_app.extensions["deepfake"].settings
