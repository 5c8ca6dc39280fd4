"""Provenance: Content Credentials (C2PA) and the IPTC DigitalSourceType, read from real files signed here.

The signing certificate comes from a throwaway CA made in the test (tests/support/credentials.py), so reading
reports `signingCredential.untrusted` unless that CA is named a trust anchor. What the Report and the shells make of
it: tests/integration/test_provenance_report.py.
"""

from __future__ import annotations

from PIL import Image

from detector.provenance import describe, read_provenance, read_xmp_digital_source_type
from tests.support.credentials import AI, CAMERA, IPTC


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
