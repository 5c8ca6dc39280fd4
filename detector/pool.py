"""Loaded detectors by model name, for every shell that serves more than one request: the server and the demo.

    pool = ModelPool("default", others=["org/other@v2"])   # the names requests may ask for
    pool.start()                                            # load the default in the background
    report = pool.get(request_model).analyze(path)          # None: the default

Each model is loaded once, on first use, with one load at a time per name (other names load meanwhile); a load
that failed is remembered for `describe` and tried again on the next request. Only offered names, and Hub ids
when `allow_hub_ids`, can be loaded; anything else is a `ModelNotOfferedError`. With a `capacity`, the
least recently used model other than the default is dropped when more are loaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from .analyzer import AnalysisOptions, Detector
from .checkpoint import HUB_ID
from .errors import DetectorError, ModelError, ModelNotOfferedError
from .settings import CoreSettings

log = logging.getLogger(__name__)


class ModelPool:
    def __init__(
        self,
        default: str = "default",
        others: Iterable[str] = (),
        *,
        allow_hub_ids: bool = False,
        capacity: int | None = None,
        face_detector: str | None = None,
        threads: int | None = None,
        preloaded: dict[str, Detector] | None = None,
        loader: Callable[[str], Detector] | None = None,
        settings: CoreSettings | None = None,
    ):
        """`settings`: what the shell read at start-up (its own settings are a `CoreSettings`); None reads them from
        the environment now, once."""
        self.settings = settings if settings is not None else CoreSettings.from_env()
        self.default = default
        self.names = list(dict.fromkeys([default, *others]))
        self.allow_hub_ids = allow_hub_ids
        self.capacity = capacity
        self.face_detector = face_detector
        self.threads = threads
        self._loader = loader or self._load
        self._detectors: OrderedDict[str, Detector] = OrderedDict(preloaded or {})
        self._errors: dict[str, DetectorError] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._default_loading = threading.Thread(target=self._load_quietly, args=(default,), name="model-loader", daemon=True)

    def start(self) -> None:
        """Load the default model in the background, so that a shell answers at once while it loads."""
        self._default_loading.start()

    def check_name(self, name: str | None) -> str:
        """The model a request asked for (None or blank: the default), if this pool offers it."""
        if name is not None and not isinstance(name, str):  # {"model": 5} in a JSON body
            raise ModelNotOfferedError(f"model must be a name (a string), not {name!r}")
        name = (name or "").strip() or self.default
        if name in self.names or (self.allow_hub_ids and HUB_ID.match(name) and not Path(name).exists()):
            return name
        hint = " or a Hub id org/name[@revision]" if self.allow_hub_ids else ""
        raise ModelNotOfferedError(f"model {name!r} is not offered here; choose one of: {', '.join(self.names)}{hint}")

    def get(self, name: str | None = None) -> Detector:
        """The loaded detector `name` (loading it if needed); a ModelError when it cannot be loaded."""
        name = self.check_name(name)
        with self._lock:
            if name in self._detectors:
                self._detectors.move_to_end(name)
                return self._detectors[name]
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:
            with self._lock:
                if name in self._detectors:
                    return self._detectors[name]
            started = time.perf_counter()
            try:
                detector = self._loader(name)
            except DetectorError as exc:
                self._errors[name] = exc
                raise
            except Exception as exc:  # a broken checkpoint must not take the shell down
                self._errors[name] = ModelError(f"model {name} could not be loaded: {exc}")
                raise self._errors[name] from exc
            log.info("model %s loaded in %.1f s: %s", name, time.perf_counter() - started, detector.model_info)
            with self._lock:
                self._errors.pop(name, None)
                self._detectors[name] = detector
                self._drop_least_recently_used()
            return detector

    def _drop_least_recently_used(self) -> None:
        while self.capacity is not None and len(self._detectors) > max(1, self.capacity):
            dropped = next(n for n in self._detectors if n != self.default or len(self._detectors) == 1)
            del self._detectors[dropped]
            log.info("model %s dropped from memory", dropped)

    def _load(self, name: str) -> Detector:
        if self.threads:
            from .env import set_threads

            set_threads(self.threads, self.settings.threads)  # process-wide: the shell's workers share these cores
        detector = Detector.load(name, options=AnalysisOptions(face_detector=self.face_detector), settings=self.settings)
        detector.face_detector()  # fail now, not on the first request, when a face detector file is missing
        return detector

    def _load_quietly(self, name: str) -> None:
        try:
            self.get(name)
        except DetectorError as exc:
            log.error("model %s could not be loaded: %s", name, exc.message)

    def is_ready(self) -> bool:
        return self.default in self._detectors

    def default_error(self) -> DetectorError | None:
        return self._errors.get(self.default)

    def describe(self) -> list[dict]:
        """Each offered model: whether it is loaded, what it is (`model_info`), or why it failed to load."""
        described = []
        for name in self.names:
            entry: dict = {"name": name, "default": name == self.default, "loaded": name in self._detectors}
            if name in self._detectors:
                entry.update(self._detectors[name].model_info.to_dict())
            elif name in self._errors:
                entry["error"] = self._errors[name].to_dict()
            described.append(entry)
        return described
