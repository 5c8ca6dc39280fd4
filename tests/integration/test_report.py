"""The Report as typed records: every shape stored or served reads back typed and writes back exactly as it was
(schema 1.0 and 1.1, a pair's model, a no-face answer, keys from a later minor version), and the JSON Schema the
server publishes is made from those records and accepts real reports."""

from __future__ import annotations

import copy
import json
from dataclasses import fields

import jsonschema
import numpy as np
import pytest
from PIL import Image

from detector.report import Record, Report, json_schemas


@pytest.fixture(scope="module")
def real_reports(detector, face_photo, fake_video, tmp_path_factory) -> dict[str, dict]:
    """Reports of real analyses, as written to report.json, and the older shapes stored history still holds."""
    noise = tmp_path_factory.mktemp("noise") / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(noise)
    shapes = {
        "image": json.loads(detector.analyze(face_photo).to_json()),
        "video": json.loads(detector.analyze(fake_video, frames=4).to_json()),
        "no_face": json.loads(detector.analyze(noise).to_json()),
    }
    old = copy.deepcopy(shapes["video"])  # schema 1.0: no unfamiliar, no provenance, no inference backend yet
    old["schema_version"] = "1.0"
    for key in ("unfamiliar", "provenance"):
        del old[key]
    for track in old["tracks"]:
        del track["unfamiliar"]
    del old["model"]["backend"]
    shapes["schema 1.0"] = old
    pair = copy.deepcopy(shapes["image"])  # the fast and the accurate view combined (detector/ensemble.py)
    members = [pair["model"], {**pair["model"], "id": "accurate", "architecture": "clip_vit_b16_lstm"}]
    pair["model"] = {**pair["model"], "id": "default+accurate", "members": members}
    shapes["pair"] = pair
    signed = copy.deepcopy(shapes["image"])
    signed["provenance"] = {
        "c2pa": {
            "present": True,
            "valid": True,
            "trusted": False,
            "signer": "Throwaway Test Signer",
            "claim_generator": "test/1.0",
            "actions": [{"action": "c2pa.created", "software_agent": "DALL-E", "digital_source_type": None}],
            "digital_source_type": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
            "validation_codes": ["signingCredential.untrusted"],
        },
        "iptc_digital_source_type": None,
        "ai_generated": True,
    }
    shapes["signed"] = signed
    later = copy.deepcopy(shapes["image"])  # a later minor version added keys this code does not know
    later["schema_version"] = "1.2"
    later["added_later"] = {"x": 1}
    later["media"]["added_later"] = True
    shapes["later minor version"] = later
    return shapes


SHAPES = ["image", "video", "no_face", "schema 1.0", "pair", "signed", "later minor version"]


@pytest.mark.parametrize("shape", SHAPES)
def test_every_stored_shape_reads_back_typed_and_writes_back_exactly(real_reports, shape):
    stored = real_reports[shape]
    report = Report.from_dict(json.loads(json.dumps(stored)))
    assert report.to_dict() == stored
    assert json.loads(report.to_json()) == stored  # what the server serves and the demo downloads
    assert report.media.kind in ("image", "video") and isinstance(report.model.id, str)
    assert all(type(frame).__name__ == "FrameResult" for frame in report.frames)


def test_older_reports_read_with_the_defaults_of_what_they_lack(real_reports):
    old = Report.from_dict(real_reports["schema 1.0"])
    assert old.unfamiliar is False and old.provenance is None and old.tracks[0].unfamiliar is False
    assert old.model.backend is None and old.model.trained is True and old.schema_version == "1.0"
    pair = Report.from_dict(real_reports["pair"])
    assert [member.id for member in pair.model.members] == ["default", "accurate"]
    assert "members" not in Report.from_dict(real_reports["image"]).model.to_dict()  # a single model names none


@pytest.mark.parametrize("shape", SHAPES)
def test_the_generated_schema_accepts_every_real_report(real_reports, shape):
    schemas = json_schemas()
    root = {**schemas["Report"], "$defs": schemas}
    jsonschema.Draft202012Validator.check_schema(root)
    jsonschema.validate(real_reports[shape], root, cls=jsonschema.Draft202012Validator)


def test_the_generated_schema_refuses_what_breaks_the_contract(real_reports):
    schemas = json_schemas()
    root = {**schemas["Report"], "$defs": schemas}
    broken = [
        {**real_reports["image"], "verdict": "probably"},
        {**real_reports["image"], "fake_probability": 1.5},
        {k: v for k, v in real_reports["image"].items() if k != "media"},
        {**real_reports["image"], "media": {**real_reports["image"]["media"], "width": "wide"}},
        {**real_reports["image"], "model": {"id": "x"}},  # revision and architecture are part of the contract
    ]
    for document in broken:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(document, root, cls=jsonschema.Draft202012Validator)


def test_every_field_of_every_record_is_in_the_schema():
    schemas = json_schemas()
    records = {cls.__name__: cls for cls in _records(Report)}
    assert set(records) == set(schemas)
    for name, cls in records.items():
        assert [spec.name for spec in fields(cls)] == list(schemas[name]["properties"]), name


def test_the_server_publishes_the_generated_schema():
    from server.openapi import SCHEMAS

    for name, schema in json_schemas(ref_prefix="#/components/schemas/").items():
        assert SCHEMAS[name] == schema


def _records(cls: type) -> list[type]:
    """`cls` and every Record type its fields hold, found by walking the dataclasses themselves."""
    import typing

    found, pending = [], [cls]
    while pending:
        current = pending.pop()
        if current in found:
            continue
        found.append(current)
        for hint in typing.get_type_hints(current).values():
            stack = [hint]
            while stack:
                item = stack.pop()
                if isinstance(item, type) and issubclass(item, Record):
                    pending.append(item)
                stack.extend(typing.get_args(item))
    return found
