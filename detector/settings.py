"""Settings as typed dataclasses, read from `DEEPFAKE_*` environment variables named after their fields.

Each layer has one settings class: `CoreSettings` (this package), `ServingSettings` (a `CoreSettings` with what every
serving shell shares: the model, the limits, the URL policy), `server.config.ServerSettings` and
`gradio_demo.settings.DemoSettings`, both `ServingSettings` with their own fields added. A field `max_pixels` is read
from `DEEPFAKE_MAX_PIXELS`; a field may name another variable (`env_field(..., env="FACES")`) or none
(`env=None`: set in code only). `environment(cls)` lists the variables of a class: the README's tables are tested
against it.

Conversion follows the field's type: bool (1/true/yes/on, 0/false/no/off), int, float, str, Path, and tuples or
lists of str (comma- or newline-separated). A variable that is set but empty counts as unset.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

PREFIX = "DEEPFAKE_"
T = TypeVar("T")


class SettingsError(ValueError):
    """A DEEPFAKE_* variable has a value that cannot be used; the message names the variable."""


def parse_bool(value: str) -> bool:
    """1/true/yes/on or 0/false/no/off (empty means no); anything else is a ValueError the shell reports."""
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a yes/no value (use 1 or 0)")


def env_field(default: Any = MISSING, *, env: str | None | type[MISSING] = MISSING, default_factory: Any = MISSING):
    """A dataclass field read from `DEEPFAKE_<env>` (default: the field name in capitals); `env=None`: no variable."""
    metadata = {} if env is MISSING else {"env": env}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def environment(cls: type) -> dict[str, str]:
    """{environment variable: field name} of a settings class."""
    names = {}
    for f in fields(cls):
        suffix = f.metadata.get("env", f.name.upper())
        if suffix is not None:
            names[PREFIX + suffix] = f.name
    return names


def values_from_env(cls: type, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """{field name: typed value} for the variables of `cls` that `environ` (default: os.environ) sets."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values = {}
    for variable, name in environment(cls).items():
        raw = environ.get(variable)
        if raw is None or not raw.strip():
            continue
        try:
            values[name] = convert(raw, hints[name])
        except ValueError as exc:
            raise SettingsError(f"{variable}={raw!r}: {exc}") from None
    return values


def from_env(cls: type[T], environ: Mapping[str, str] | None = None, **overrides) -> T:
    """Defaults, then the variables `environ` sets, then `overrides`."""
    return cls(**{**values_from_env(cls, environ), **overrides})


def convert(raw: str, kind: Any) -> Any:
    """A variable's text as `kind` (a type hint)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):  # X | None
        kind = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is bool:
        return parse_bool(raw)
    if kind in (int, float):
        return kind(raw.strip())
    if kind is Path:
        return Path(raw.strip()).expanduser()
    if origin in (tuple, list):
        items = [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()]
        return tuple(items) if origin is tuple else items
    return raw.strip()


@dataclass(frozen=True)
class CoreSettings:
    """What the core is configured with. A shell reads it once at start-up (`CoreSettings.from_env()`, or its own
    settings class, which is a `CoreSettings`) and hands it down: `Detector(..., settings=)`, `ModelPool(settings=)`.
    `Detector.load` without settings reads it from the environment once, for library users; below the front door
    nothing reads the environment."""

    backend: str = "auto"  # auto | onnx | onnx-int8 | torch (detector/backends.py)
    threads: int = 0  # CPU threads for OpenCV, ONNX Runtime and PyTorch; 0: every core
    yunet_model: Path | None = None  # a YuNet .onnx file, when none ships beside the checkpoint
    cache_dir: Path | None = None  # None: $XDG_CACHE_HOME/deepfake-checker (ONNX exports, crops, CLIP)
    shared_dir: Path | None = None  # None: ../shared beside the checkout (test media, third-party models)
    clip_onnx: Path | None = None  # the CLIP image tower's ONNX file, when not in the cache
    # a PEM bundle of the root certificates whose Content Credentials count as trusted (e.g. the C2PA trust list);
    # None: no signature is trusted, every valid one is reported "not verified"
    c2pa_trust_anchors: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> CoreSettings:
        """Defaults, then the `DEEPFAKE_*` variables `environ` (default: os.environ) sets, then `overrides`."""
        return from_env(cls, environ, **overrides)

    def cache_folder(self, kind: str) -> Path:
        """A folder of this project's cache: `cache_dir/KIND`, by default ~/.cache/deepfake-checker/KIND
        (kinds: crops, onnx, clip, embeddings)."""
        from .paths import cache_dir

        return cache_dir(kind, self.cache_dir)

    def shared_folder(self) -> Path:
        """The third-party data folder: `shared_dir`, by default ../shared beside the checkout."""
        from .paths import shared_dir

        return shared_dir(self.shared_dir)

    def clip_tower(self) -> Path | None:
        """The CLIP image tower's ONNX file these settings find (`clip_onnx`, else the cache), or None."""
        from .clip import ClipEncoder

        return ClipEncoder.locate(self.cache_folder("clip"), self.clip_onnx)


FAST_MODEL = "default"  # the MobileNetV3-LSTM alone: embedded, offline, the cheapest
ACCURATE_MODEL = "accurate"  # the CLIP-backed view (its heads are embedded; the CLIP tower is fetched into the cache)
PAIRED_MODEL = f"{FAST_MODEL}+{ACCURATE_MODEL}"  # both views together (detector/ensemble.py)


def served_model(settings: CoreSettings) -> str:
    """What the CLI, the server and the demo analyse with unless told otherwise: the two views together where the
    CLIP image tower is installed (scripts/setup fetches it), the fast view alone where it is not. The pair, stacked
    by the rule the accurate checkpoint carries, decides more often rightly than either the old pair or the fast view
    on sources it never saw, without labelling their reals fake (docs/cross-source.md, run 4); it costs the CLIP
    tower's time per face on top of the fast view's (docs/performance.md)."""
    return PAIRED_MODEL if settings.clip_tower() is not None else FAST_MODEL


def offered_models(settings: CoreSettings) -> tuple[str, ...]:
    """The model names requests may ask for unless configured: all three views where the CLIP tower is installed,
    the fast one alone where it is not (the others could not load)."""
    return (FAST_MODEL, ACCURATE_MODEL, PAIRED_MODEL) if settings.clip_tower() is not None else (FAST_MODEL,)


@dataclass(frozen=True)
class ServingSettings(CoreSettings):
    """The settings every serving shell (server, demo) shares, with the same variables and defaults: the core's
    (`threads`: shared among the shell's workers) and the serving ones below."""

    # the model analyses use unless a request names another allowed one: both views where the CLIP tower is
    # installed, the fast one alone where it is not (see `served_model`); None: decided from the other settings
    model: str = None  # type: ignore[assignment]
    # other model names requests may ask for (names, checkpoint folders, Hub ids); by default the fast view, and the
    # CLIP-backed ones where the CLIP tower is installed
    models: tuple[str, ...] = None  # type: ignore[assignment]
    face_detector: str | None = env_field(None, env="FACES")  # auto | yunet | dlib (None: the checkpoint's choice)
    max_frames: int = 64  # key frames one request may ask for
    max_upload_bytes: int = 100 * 1024**2
    max_fetch_bytes: int = 200 * 1024**2
    max_duration_s: float = 600.0
    max_pixels: int = 40_000_000
    fetch_timeout_s: float = 60.0  # a whole fetch: resolving, the page, every request, the download
    allow_private_urls: bool = False  # let links reach loopback and private addresses (private deployments)
    trusted_endpoints: frozenset[tuple[str, int]] = env_field(env=None, default_factory=frozenset)  # tests only

    def __post_init__(self):
        # the defaults of `model` and `models` depend on where the CLIP tower is looked for (`clip_onnx`, `cache_dir`)
        if self.model is None:
            object.__setattr__(self, "model", served_model(self))
        if self.models is None:
            object.__setattr__(self, "models", offered_models(self))

    @property
    def url_policy(self):
        from .fetching.urlguard import UrlPolicy

        trusted = frozenset((str(ip), int(port)) for ip, port in self.trusted_endpoints)
        return UrlPolicy(allow_private=self.allow_private_urls, trusted_endpoints=trusted)

    @property
    def fetch_limits(self):
        from .fetching.fetch import FetchLimits

        return FetchLimits(self.max_fetch_bytes, self.max_duration_s, self.fetch_timeout_s)

    def media_limits(self, max_bytes: int):
        """Limits on decoding a file of at most `max_bytes` (an upload's or a fetch's limit)."""
        from .media import MediaLimits

        return MediaLimits(max_bytes=max_bytes, max_pixels=self.max_pixels, max_duration_s=self.max_duration_s)
