"""The detectors this server may use: the default model, loaded in the background when the app starts, and the
other allowed names, loaded on first use. Requests can only name models in this list, never arbitrary ones.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from detector import AnalysisOptions, Detector
from detector.errors import DetectorError, ModelError

from .errors import ApiError

log = logging.getLogger(__name__)


class ModelRegistry:
    def __init__(
        self,
        default: str,
        others: list[str],
        face_detector: str | None = None,
        threads: int = 0,
        workers: int = 1,
        preloaded: dict[str, Detector] | None = None,
        loader: Callable[[str], Detector] | None = None,
    ):
        self.default = default
        self.names = list(dict.fromkeys([default, *others]))
        self.face_detector = face_detector
        self.threads = threads or max(1, (os.cpu_count() or 1) // max(1, workers))
        self._loader = loader or self._load
        self._detectors: dict[str, Detector] = dict(preloaded or {})
        self._errors: dict[str, DetectorError] = {}
        self._locks = {name: threading.Lock() for name in self.names}
        self._default_loading = threading.Thread(target=self._load_quietly, args=(default,), name="model-loader", daemon=True)

    def start(self) -> None:
        """Load the default model in the background so that the server answers /healthz at once."""
        self._default_loading.start()

    def _load(self, name: str) -> Detector:
        from detector.env import set_threads

        set_threads(self.threads)  # process-wide: workers share these cores
        options = AnalysisOptions(face_detector=self.face_detector)
        detector = Detector.load(name, options=options)
        detector.face_detector()  # fail now, not on the first request, when a face detector file is missing
        return detector

    def _load_quietly(self, name: str) -> None:
        try:
            self.get(name)
        except DetectorError as exc:
            log.error("model %s could not be loaded: %s", name, exc.message)

    def check_name(self, name: str | None) -> str:
        name = name or self.default
        if name not in self.names:
            raise ApiError(400, "unknown_model", f"model {name!r} is not offered here; choose one of: {', '.join(self.names)}")
        return name

    def get(self, name: str | None = None) -> Detector:
        """The loaded detector `name` (loading it if needed); a ModelError when it cannot be loaded."""
        name = self.check_name(name)
        if name in self._detectors:
            return self._detectors[name]
        with self._locks[name]:
            if name not in self._detectors:
                try:
                    self._detectors[name] = self._loader(name)
                    self._errors.pop(name, None)
                    log.info("model %s loaded: %s", name, self._detectors[name].model_info)
                except DetectorError as exc:
                    self._errors[name] = exc
                    raise
                except Exception as exc:  # a broken checkpoint must not take the server down
                    error = ModelError(f"model {name} could not be loaded: {exc}")
                    self._errors[name] = error
                    raise error from exc
        return self._detectors[name]

    def is_ready(self) -> bool:
        return self.default in self._detectors

    def default_error(self) -> DetectorError | None:
        return self._errors.get(self.default)

    def describe(self) -> list[dict]:
        described = []
        for name in self.names:
            entry: dict = {"name": name, "default": name == self.default, "loaded": name in self._detectors}
            if name in self._detectors:
                entry.update(self._detectors[name].model_info)
            elif name in self._errors:
                entry["error"] = self._errors[name].to_dict()
            described.append(entry)
        return described
