"""The Report: what every shell returns for one analysed file or URL (versioned JSON, see DESIGN.md), as typed
records that read a stored report.json back exactly as it was written, and the JSON Schema of that JSON.

Keep `SCHEMA_VERSION` stable: the browser extension and stored history read these keys. Add keys freely
(minor version), never rename or remove one without a major version.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any

# 1.1: `unfamiliar` on the Report and on each track (a face unlike the faces the model learned from, see
# detector/familiarity.py; a 1.0 Report reads as if no face were unfamiliar), and `provenance` (Content
# Credentials and IPTC source type, detector/provenance.py).
SCHEMA_VERSION = "1.1"
VERDICTS = ("real", "fake", "uncertain", "no_face")
# The stages `progress(stage, done, total)` reports, in order: fetching a URL, decoding key frames, finding faces,
# running the model. Shells map them onto their own progress bars (and may add their own, e.g. "render").
PROGRESS_STAGES = ("fetch", "decode", "faces", "model")

PROBABILITY = {"minimum": 0, "maximum": 1}


def schema_keywords(**keywords: Any) -> dict[str, Any]:
    """Field metadata: JSON Schema keywords the field's type does not say (an enum, a range, a description); any
    dataclass that `json_schemas` describes uses it."""
    return {"schema": keywords}


class Record:
    """What the Report's dataclasses share: `to_dict`, and `from_dict` its exact inverse for any stored document.

    A key a stored document lacks (a 1.0 Report has no `unfamiliar`, an older one no `model.backend`) reads as the
    field's default and stays out of `to_dict`; a key these types do not know is kept as it was. Fields marked
    `omit_default` are left out while they hold their default (a single model has no `members`)."""

    def to_dict(self) -> dict[str, Any]:
        absent = getattr(self, "_absent", frozenset())
        data: dict[str, Any] = {}
        for spec in fields(self):  # type: ignore[arg-type]
            value = getattr(self, spec.name)
            if spec.name in absent or (spec.metadata.get("omit_default") and value == spec.default):
                continue
            data[spec.name] = _plain(value)
        data.update(getattr(self, "_unknown", {}))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        hints, names = _hints(cls), [spec.name for spec in fields(cls)]  # type: ignore[arg-type]
        record = cls(**{name: _typed(hints[name], data[name]) for name in names if name in data})
        absent = frozenset(name for name in names if name not in data)
        unknown = {key: value for key, value in data.items() if key not in hints}
        if absent:
            record._absent = absent
        if unknown:
            record._unknown = unknown
        return record


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _typed(hint: Any, value: Any) -> Any:
    """A JSON value as the type `hint` says: records re-typed, lists and dicts copied."""
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _typed(next(arg for arg in args if arg is not type(None)), value)
    if origin is list:
        return [_typed(args[0], item) for item in value]
    if origin is dict:
        return {key: _typed(args[1], item) for key, item in value.items()}
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_dict(value)
    return value


@dataclass
class MediaInfo(Record):
    """What the file is: read from its headers (detector/media.py), with the count of key frames analysed."""

    kind: str = field(metadata=schema_keywords(enum=["image", "video"]))
    format: str
    codec: str | None
    width: int  # as displayed, after rotation
    height: int
    duration_s: float
    fps: float | None
    frame_count: int
    rotation: int  # degrees the stored pixels are turned clockwise to display upright
    size_bytes: int
    frames_analyzed: int | None = None  # set on the Report's copy: how many key frames were analysed


@dataclass
class ModelInfo(Record):
    """Which checkpoint judged, and how it ran; a pair (detector/ensemble.py) lists its two models as `members`."""

    id: str
    revision: str | None
    architecture: str
    input_size: int | None = None
    trained: bool = True  # False: a checkpoint never trained for this task, whose scores mean nothing
    backend: str | None = None  # the inference backend: onnx or torch
    members: list[ModelInfo] | None = field(default=None, metadata={"omit_default": True})


@dataclass
class FaceResult(Record):
    track: int
    box: list[float]  # x, y, width, height in pixels of the upright frame
    score: float  # face detector confidence
    fake_probability: float = field(metadata=schema_keywords(**PROBABILITY))
    whole_frame: bool = False


@dataclass
class FrameResult(Record):
    index: int
    timestamp_s: float
    # the most suspicious face in this frame; None when no face was analysed
    fake_probability: float | None = field(metadata=schema_keywords(**PROBABILITY))
    smoothed_probability: float | None = field(metadata=schema_keywords(**PROBABILITY))
    faces: list[FaceResult] = field(default_factory=list)


@dataclass
class TrackResult(Record):
    id: int
    frames: int
    fake_probability: float = field(metadata=schema_keywords(**PROBABILITY))  # calibrated, whole track (LSTM + heads)
    mean_box: list[float]
    unfamiliar: bool = False  # the face is unlike the faces the model learned from: its score is less reliable


@dataclass
class C2paClaim(Record):
    """The active manifest of a file's C2PA Content Credentials (detector/provenance.py reads it)."""

    present: bool
    valid: bool  # the manifest is intact and its signature verifies
    trusted: bool  # ...and the signing certificate chains to a configured trust anchor
    signer: str | None  # the certificate's organisation (else common name); None when unreadable
    claim_generator: str | None  # the software that wrote the manifest, with its version
    actions: list[dict[str, Any]]  # {action, software_agent, digital_source_type} per c2pa action
    digital_source_type: str | None  # the IPTC source type the actions state (an AI one first)
    validation_codes: list[str]  # what did not verify, e.g. signingCredential.untrusted; empty when all did


@dataclass
class Provenance(Record):
    """What the file says about its own origin; never changes the verdict (README: The Report)."""

    c2pa: C2paClaim | None
    iptc_digital_source_type: str | None  # from the file's XMP, unsigned
    ai_generated: bool | None  # True: a claim says a trained algorithm made it; False: a valid claim says a camera


@dataclass
class Report(Record):
    source: str
    verdict: str = field(metadata=schema_keywords(enum=list(VERDICTS)))
    fake_probability: float | None = field(metadata=schema_keywords(**PROBABILITY))
    confidence: float | None = field(metadata=schema_keywords(**PROBABILITY))
    threshold: float
    uncertain_band: list[float]
    media: MediaInfo
    frames: list[FrameResult]
    tracks: list[TrackResult]
    model: ModelInfo
    timings_ms: dict[str, float]  # fetch, decode, faces, model, total
    warnings: list[str] = field(default_factory=list)
    unfamiliar: bool = False  # a face track is unfamiliar: the verdict is then never "real" or "fake"
    provenance: Provenance | None = None  # None only in reports stored before schema 1.1
    schema_version: str = field(default=SCHEMA_VERSION, metadata={"required": True})

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        return {"schema_version": data.pop("schema_version"), **data}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


# ------------------------------------------------------------------------------------------------ JSON Schema


def json_schemas(ref_prefix: str = "#/$defs/", roots: Sequence[type] = ()) -> dict[str, dict[str, Any]]:
    """The JSON Schema of the Report and of every record in it, by class name, made from the dataclasses above:
    what the server's OpenAPI document publishes (`ref_prefix` "#/components/schemas/"). A field is required when
    every document written since schema 1.0 has it; keys not listed are allowed (minor versions add keys). `roots`:
    other dataclasses of an answer to describe the same way (field metadata "schema" adds enums, ranges...)."""
    schemas: dict[str, dict[str, Any]] = {}
    pending: list[type] = [Report, *roots]
    while pending:
        cls = pending.pop()
        if cls.__name__ in schemas:
            continue
        properties, required = {}, []
        for spec in fields(cls):
            properties[spec.name] = {**_type_schema(_hints(cls)[spec.name], ref_prefix, pending), **spec.metadata.get("schema", {})}
            has_default = spec.default is not MISSING or spec.default_factory is not MISSING
            if not has_default or spec.metadata.get("required"):
                required.append(spec.name)
        schemas[cls.__name__] = {
            "type": "object",
            "description": " ".join((cls.__doc__ or cls.__name__).split("\n\n")[0].split()),
            "required": required,
            "properties": properties,
        }
    schemas["Report"]["description"] = f"The Report, schema_version {SCHEMA_VERSION} (see README: The Report)."
    return schemas


def _type_schema(hint: Any, ref_prefix: str, pending: list[type]) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in args if arg is not type(None)]
        schema = _type_schema(inner, ref_prefix, pending)
        if "type" in schema:
            return {**schema, "type": [schema["type"], "null"]}
        return {"anyOf": [schema, {"type": "null"}]}
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0], ref_prefix, pending)}
    if origin is dict:
        values = {} if args[1] is Any else {"additionalProperties": _type_schema(args[1], ref_prefix, pending)}
        return {"type": "object", **values}
    if is_dataclass(hint):
        pending.append(hint)
        return {"$ref": f"{ref_prefix}{hint.__name__}"}
    return {"type": {str: "string", int: "integer", float: "number", bool: "boolean"}[hint]}
