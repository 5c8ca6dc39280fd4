"""Provenance: Content Credentials (C2PA) and the IPTC DigitalSourceType, read from real files signed here.

The signing certificate comes from a throwaway CA made in the test (ES256 leaf with the key usages c2pa-rs asks
for), so reading reports `signingCredential.untrusted` unless that CA is named a trust anchor.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import subprocess
import sys

import c2pa
import pytest
from PIL import Image

from detector.provenance import describe, read_provenance, read_xmp_digital_source_type
from detector.report import SCHEMA_VERSION, Provenance, Report
from gradio_demo.analysis import summary_markdown
from tests.conftest import ROOT, run_extension_label

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
AI = IPTC + "trainedAlgorithmicMedia"
CAMERA = IPTC + "digitalCapture"


# ------------------------------------------------------------------------------------------------ signed fixtures


class ThrowawayCA:
    """A root and an ES256 signing certificate under it, made fresh for this test session."""

    def __init__(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = datetime.datetime.now(datetime.timezone.utc)

        def name(common: str) -> x509.Name:
            return x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, common),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Throwaway Test Signer"),
                ]
            )

        def usage(**flags) -> x509.KeyUsage:
            names = (
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
                "encipher_only",
                "decipher_only",
            )
            return x509.KeyUsage(**{n: flags.get(n, False) for n in names})

        def certificate(subject, issuer, key, signing_key, extensions):
            builder = x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            builder = builder.serial_number(x509.random_serial_number())
            builder = builder.not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(
                now + datetime.timedelta(days=30)
            )
            for extension, critical in extensions:
                builder = builder.add_extension(extension, critical=critical)
            return builder.sign(signing_key, hashes.SHA256())

        root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        root = certificate(
            name("Throwaway Root"),
            name("Throwaway Root"),
            root_key,
            root_key,
            [
                (x509.BasicConstraints(ca=True, path_length=None), True),
                (usage(key_cert_sign=True, crl_sign=True), True),
                (x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False),
            ],
        )
        leaf = certificate(
            name("Throwaway Leaf"),
            root.subject,
            leaf_key,
            root_key,
            [
                (usage(digital_signature=True), True),
                (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False),
                (x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False),
                (x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False),
            ],
        )
        pem = serialization.Encoding.PEM
        self.root_pem = root.public_bytes(pem)
        self.chain_pem = leaf.public_bytes(pem) + self.root_pem
        self.key_pem = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def sign(self, source, target, mime: str, source_type: str, agent: str = "DALL-E") -> None:
        manifest = {
            "claim_generator_info": [{"name": "ProvenanceTest", "version": "1.0"}],
            "title": target.name,
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "data": {
                        "actions": [
                            {"action": "c2pa.created", "digitalSourceType": source_type, "softwareAgent": {"name": agent}}
                        ]
                    },
                }
            ],
        }
        signer = c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(alg=b"es256", sign_cert=self.chain_pem, private_key=self.key_pem, ta_url=None)
        )
        with open(source, "rb") as src, open(target, "wb") as dst, c2pa.Builder(manifest) as builder:
            builder.sign(signer, mime, src, dst)


@pytest.fixture(scope="module")
def authority() -> ThrowawayCA:
    return ThrowawayCA()


@pytest.fixture(scope="module")
def signed_photo(tmp_path_factory, authority, face_photo):
    target = tmp_path_factory.mktemp("signed") / "signed.jpg"
    authority.sign(face_photo, target, "image/jpeg", AI)
    return target


def stripped_copy(path, target):
    """What a platform serves after re-encoding: the same pixels, no metadata."""
    with Image.open(path) as image:
        image.convert("RGB").save(target, "JPEG", quality=92)
    return target


def xmp_packet(body: str) -> bytes:
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"{body}'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


# ------------------------------------------------------------------------------------------------------ reading


def test_signed_ai_image_is_read_valid_but_not_trusted(signed_photo):
    provenance = read_provenance(signed_photo)
    claim = provenance.c2pa
    assert claim is not None and claim.present and claim.valid and not claim.trusted
    assert "signingCredential.untrusted" in claim.validation_codes
    assert claim.signer == "Throwaway Test Signer" and claim.claim_generator.startswith("ProvenanceTest 1.0")
    assert claim.digital_source_type == AI
    assert claim.actions == [{"action": "c2pa.created", "software_agent": "DALL-E", "digital_source_type": AI}]
    assert provenance.ai_generated is True
    assert describe(provenance) == "Content Credentials: made with DALL-E (signed by Throwaway Test Signer; not verified)"


def test_a_configured_trust_anchor_makes_the_signature_trusted(signed_photo, authority, tmp_path):
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(authority.root_pem)
    claim = read_provenance(signed_photo, anchors).c2pa
    assert claim.valid and claim.trusted and claim.validation_codes == []
    assert describe(read_provenance(signed_photo, anchors)).endswith("(signed by Throwaway Test Signer; verified)")


def test_a_camera_claim_says_not_ai_and_an_altered_file_is_invalid(authority, face_photo, tmp_path):
    camera = tmp_path / "camera.jpg"
    authority.sign(face_photo, camera, "image/jpeg", CAMERA, agent="Test Camera")
    provenance = read_provenance(camera)
    assert provenance.ai_generated is False and provenance.c2pa.valid
    assert describe(provenance).startswith("Content Credentials: captured by a camera (Test Camera)")

    data = bytearray(camera.read_bytes())
    data[-200] ^= 0xFF  # one bit of the image data changed after signing
    altered = tmp_path / "altered.jpg"
    altered.write_bytes(bytes(data))
    claim = read_provenance(altered).c2pa
    assert claim.present and not claim.valid and not claim.trusted
    assert "assertion.dataHash.mismatch" in claim.validation_codes
    assert read_provenance(altered).ai_generated is None  # a broken claim cannot say "camera"
    assert "present but invalid" in describe(read_provenance(altered))


def test_stripped_copy_says_nothing(signed_photo, tmp_path, face_photo):
    for path in (stripped_copy(signed_photo, tmp_path / "stripped.jpg"), face_photo):
        provenance = read_provenance(path)
        assert (provenance.c2pa, provenance.iptc_digital_source_type, provenance.ai_generated) == (None, None, None)
        assert describe(provenance) is None


def test_xmp_digital_source_type_in_jpeg_and_png(tmp_path, face_photo):
    tagged = tmp_path / "tagged.jpg"
    with Image.open(face_photo) as image:
        image.save(tagged, "JPEG", xmp=xmp_packet(f' Iptc4xmpExt:DigitalSourceType="{AI}"/>'))
    provenance = read_provenance(tagged)
    assert provenance.iptc_digital_source_type == AI and provenance.c2pa is None and provenance.ai_generated is True
    assert describe(provenance) == "File metadata (unsigned): digital source type trainedAlgorithmicMedia"

    from PIL.PngImagePlugin import PngInfo

    for body, expected in (
        (f"><Iptc4xmpExt:DigitalSourceType>{CAMERA}</Iptc4xmpExt:DigitalSourceType></rdf:Description>", CAMERA),
        (
            f'><Iptc4xmpExt:DigitalSourceType rdf:resource="{IPTC}compositeWithTrainedAlgorithmicMedia"/></rdf:Description>',
            IPTC + "compositeWithTrainedAlgorithmicMedia",
        ),
    ):
        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp_packet(body).decode())
        png = tmp_path / "tagged.png"
        Image.new("RGB", (32, 32)).save(png, pnginfo=info)
        assert read_xmp_digital_source_type(png) == expected
    # unsigned XMP alone never says "camera": only a valid C2PA claim can
    assert read_provenance(png).ai_generated is True
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert read_xmp_digital_source_type(tmp_path / "empty.jpg") is None


def test_signed_video(authority, real_video, tmp_path):
    signed = tmp_path / "signed.mp4"
    authority.sign(real_video, signed, "video/mp4", AI, agent="Sora")
    provenance = read_provenance(signed)
    assert provenance.c2pa.valid and provenance.ai_generated is True
    assert describe(provenance) == "Content Credentials: made with Sora (signed by Throwaway Test Signer; not verified)"


# ------------------------------------------------------------------------------------- the Report and the verdict


def test_report_carries_provenance_and_the_face_verdict_is_kept(detector, face_photo, signed_photo, authority, tmp_path, monkeypatch):
    """Decision (README: The Report): provenance never changes `verdict`, `fake_probability` or `confidence`, even
    from a valid, trusted AI claim; when they point different ways, a warning says so and both are shown."""
    plain = detector.analyze(face_photo)  # the same pixels unsigned: signing adds segments, never re-encodes
    untrusted = detector.analyze(signed_photo)
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(authority.root_pem)
    monkeypatch.setenv("DEEPFAKE_C2PA_TRUST_ANCHORS", str(anchors))
    trusted = detector.analyze(signed_photo)

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
