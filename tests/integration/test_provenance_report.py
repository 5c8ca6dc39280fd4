"""Provenance in the Report and where users look: the face verdict is kept whatever the Content Credentials say,
and the CLI, the demo, the HTML report, the JSON answer and the extension say the same words."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

from detector.report import SCHEMA_VERSION, Provenance, Report
from gradio_demo.analysis import summary_markdown
from tests.conftest import ROOT, run_extension_label

# ------------------------------------------------------------------------------------- the Report and the verdict


def test_report_carries_provenance_and_the_face_verdict_is_kept(detector, face_photo, signed_photo, authority, tmp_path):
    """Decision (README: The Report): provenance never changes `verdict`, `fake_probability` or `confidence`, even
    from a valid, trusted AI claim; when they point different ways, a warning says so and both are shown."""
    plain = detector.analyze(face_photo)  # the same pixels unsigned: signing adds segments, never re-encodes
    untrusted = detector.analyze(signed_photo)
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(authority.root_pem)
    # The trust anchors are a setting, read once by whoever builds the detector: a detector built with them trusts.
    from detector import Detector

    settings = dataclasses.replace(detector.settings, c2pa_trust_anchors=anchors)
    trusting = Detector(scorer=detector.scorer, options=detector.options, yunet_path=detector.yunet_path, settings=settings)
    trusted = trusting.analyze(signed_photo)

    assert plain.provenance.c2pa is None and plain.provenance.ai_generated is None
    assert untrusted.provenance.c2pa.trusted is False and trusted.provenance.c2pa.trusted is True
    for report in (untrusted, trusted):
        assert report.provenance.ai_generated is True
        assert (report.verdict, report.fake_probability, report.confidence) == (
            plain.verdict,
            plain.fake_probability,
            plain.confidence,
        )
        disagree = [w for w in report.warnings if w.startswith("provenance says a trained algorithm")]
        assert len(disagree) == (report.verdict != "fake")
    assert plain.verdict != "fake"  # this real photo: the disagreement is shown, in words that say how far to trust it
    assert "(verified)" in trusted.warnings[-1] and "(not verified)" in untrusted.warnings[-1]

    data = json.loads(untrusted.to_json())
    assert data["schema_version"] == SCHEMA_VERSION == "1.1"
    assert set(data["provenance"]) == {"c2pa", "iptc_digital_source_type", "ai_generated"}
    assert set(data["provenance"]["c2pa"]) == {
        "present",
        "valid",
        "trusted",
        "signer",
        "claim_generator",
        "actions",
        "digital_source_type",
        "validation_codes",
    }
    assert Report.from_dict(data) == untrusted  # stored reports read back whole
    old = {k: v for k, v in data.items() if k != "provenance"}
    assert Report.from_dict(old).provenance is None  # reports stored before 1.1 still load


def test_where_users_look(detector, signed_photo, live):
    """The CLI line, the demo summary, the HTML report and the JSON answer all say what the credentials say, in the
    same words as the extension's tooltip (extension/lib/labels.js)."""
    expected = "Content Credentials: made with DALL-E (signed by Throwaway Test Signer; not verified)"
    cli = subprocess.run(
        [sys.executable, "-m", "detector", "analyze", str(signed_photo)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert cli.returncode == 0, cli.stderr
    assert f"  {expected}" in cli.stdout.splitlines()

    report = detector.analyze(signed_photo)
    assert expected in summary_markdown(report).split("\n\n")
    stripped = dataclasses.replace(report, provenance=Provenance(None, None, None))
    assert "Content Credentials: none found (many platforms strip them)" in summary_markdown(stripped)

    answer = live.upload(signed_photo).json()
    assert answer["report"]["provenance"]["c2pa"]["signer"] == "Throwaway Test Signer"
    page = live.get(f"/analyses/{answer['id']}")
    assert page.status_code == 200 and expected in page.text and "signingCredential.untrusted" in page.text

    tooltip = run_extension_label("provenanceLine", answer["report"]["provenance"])
    assert tooltip.stdout.strip() == expected, tooltip.stderr
