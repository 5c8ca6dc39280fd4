"""Provenance: what a media file says about its own origin, read from its original bytes.

Two sources, both optional and both easy to strip (X and Instagram do; LinkedIn, news sites and direct links keep
them):
- C2PA Content Credentials, a signed manifest, read and validated with the official `c2pa-python` bindings. A valid
  signature proves the manifest is intact and was signed by the holder of the certificate; it is *trusted* only when
  that certificate chains to an anchor we were given (`DEEPFAKE_C2PA_TRUST_ANCHORS`), otherwise anyone could have
  made it.
- The IPTC DigitalSourceType written into the file's XMP (unsigned: a statement, not a proof).

`read_provenance` never fails an analysis: an unreadable file or manifest is reported, not raised. Provenance never
changes the face model's verdict (README: The Report, `provenance`).
"""

from __future__ import annotations

import json
import logging
import mmap
import re
from pathlib import Path
from typing import Any

from .report import C2paClaim, Provenance

log = logging.getLogger(__name__)

IPTC_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# Made, or composited, by an algorithm: the IPTC codes a generator or an editor's generative fill writes.
AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia"})
# Captured by a camera (computational capture: a phone's multi-frame photography).
CAPTURE_SOURCE_TYPES = frozenset({"digitalCapture", "computationalCapture"})

# c2pa-rs reads offline here: a manifest that points to a remote URL must not make the server fetch it (the fetcher's
# URL guard does not see the native library's requests), and revocation checks would need the network too.
_OFFLINE_SETTINGS = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}

_XMP_START, _XMP_END = b"<x:xmpmeta", b"</x:xmpmeta>"
_MAX_XMP_BYTES = 1024 * 1024
# The three ways XMP writes one property: an attribute, an element's text, an element's rdf:resource.
_SOURCE_TYPE = re.compile(
    rb"""[\w-]+:DigitalSourceType\s*=\s*["']([^"']+)["']"""
    rb"""|<[\w-]+:DigitalSourceType\s*>\s*([^<\s]+)\s*<"""
    rb"""|<[\w-]+:DigitalSourceType\s[^>]*?rdf:resource\s*=\s*["']([^"']+)["']"""
)


def read_provenance(path: str | Path, trust_anchors: Path | None = None) -> Provenance:
    """The Content Credentials and the IPTC DigitalSourceType of one file, and what they say together.

    `trust_anchors`: a PEM bundle of the root certificates whose signatures count as trusted (none: nothing is)."""
    claim = read_c2pa(path, trust_anchors)
    iptc = read_xmp_digital_source_type(path)
    return Provenance(c2pa=claim, iptc_digital_source_type=iptc, ai_generated=ai_generated(claim, iptc))


def source_type_code(value: str | None) -> str | None:
    """`trainedAlgorithmicMedia` from the IPTC URI (or from the bare code some writers use)."""
    if not value:
        return None
    return value.rstrip("/").rsplit("/", 1)[-1]


def ai_generated(claim: C2paClaim | None, iptc_source_type: str | None) -> bool | None:
    """True when any claim says a trained algorithm made or composited the content (even an unverified one: a
    statement against interest is rarely forged), False when a valid C2PA claim says a camera captured it, None when
    nothing is said."""
    c2pa_type = source_type_code(claim.digital_source_type) if claim else None
    action_types = {source_type_code(a.get("digital_source_type")) for a in claim.actions} if claim else set()
    if {c2pa_type, source_type_code(iptc_source_type), *action_types} & AI_SOURCE_TYPES:
        return True
    if claim is not None and claim.valid and ({c2pa_type, *action_types} & CAPTURE_SOURCE_TYPES):
        return False
    return None


# ------------------------------------------------------------------------------------------------------------ C2PA


def read_c2pa(path: str | Path, trust_anchors: Path | None = None) -> C2paClaim | None:
    """The active manifest of the file's Content Credentials, validated; None when the file carries none or its
    format cannot carry them."""
    import c2pa

    try:
        context = c2pa.Context.from_dict(_reader_settings(trust_anchors))
        with c2pa.Reader(str(path), context=context) as reader:
            store = json.loads(reader.json())
    except (c2pa.C2paError.ManifestNotFound, c2pa.C2paError.NotSupported):
        return None
    except c2pa.C2paError as exc:  # a manifest is there (or claims to be) but cannot be read: say so
        log.info("unreadable Content Credentials in %s: %s", path, exc)
        return C2paClaim(True, False, False, None, None, [], None, [_error_code(exc)])
    except OSError as exc:
        log.warning("cannot read %s for Content Credentials: %s", path, exc)
        return None
    return claim_from_store(store)


def claim_from_store(store: dict[str, Any]) -> C2paClaim | None:
    """A `C2paClaim` from c2pa's JSON manifest store (its `Reader.json()`)."""
    manifest = store.get("manifests", {}).get(store.get("active_manifest") or "")
    if manifest is None:
        return None
    state = store.get("validation_state")
    actions = _actions(manifest)
    types = [a["digital_source_type"] for a in actions if a["digital_source_type"]]
    ai_types = [t for t in types if source_type_code(t) in AI_SOURCE_TYPES]
    return C2paClaim(
        present=True,
        valid=state in ("Valid", "Trusted"),
        trusted=state == "Trusted",
        signer=_signer(manifest.get("signature_info") or {}),
        claim_generator=_claim_generator(manifest),
        actions=actions,
        digital_source_type=(ai_types or types or [None])[0],
        validation_codes=[s["code"] for s in store.get("validation_status") or [] if s.get("code")],
    )


def _reader_settings(trust_anchors: Path | None) -> dict[str, Any]:
    settings: dict[str, Any] = dict(_OFFLINE_SETTINGS)
    if trust_anchors is not None:
        settings["trust"] = {"trust_anchors": Path(trust_anchors).read_text()}
    return settings


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    actions = []
    for assertion in manifest.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            agent = action.get("softwareAgent")
            actions.append(
                {
                    "action": action.get("action"),
                    "software_agent": agent.get("name") if isinstance(agent, dict) else agent,
                    "digital_source_type": action.get("digitalSourceType"),
                }
            )
    return actions


def _signer(info: dict[str, Any]) -> str | None:
    """Who signed: the certificate's organisation (what C2PA viewers show), else its common name."""
    return info.get("issuer") or info.get("common_name") or None


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    for generator in manifest.get("claim_generator_info") or []:
        if generator.get("name"):
            return " ".join(str(part) for part in (generator["name"], generator.get("version")) if part)
    return manifest.get("claim_generator") or None


def _error_code(exc: Exception) -> str:
    return "c2pa.error." + type(exc).__name__.lstrip("_").removeprefix("C2pa")


# ------------------------------------------------------------------------------------------------------------- XMP


def read_xmp_digital_source_type(path: str | Path) -> str | None:
    """The IPTC DigitalSourceType of the first XMP packet that states one. XMP is plain text in every container that
    carries it (a JPEG APP1 segment, a PNG iTXt chunk, an MP4 uuid box, a WebP chunk), so the packet is found by its
    markers rather than by parsing each container."""
    try:
        with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            start = data.find(_XMP_START)
            while start != -1:
                end = data.find(_XMP_END, start, start + _MAX_XMP_BYTES)
                if end == -1:
                    return None
                found = _SOURCE_TYPE.search(data[start:end])
                if found:
                    return next(group for group in found.groups() if group).decode("utf-8", "replace")
                start = data.find(_XMP_START, end)
    except (OSError, ValueError) as exc:  # ValueError: an empty file cannot be mapped
        log.info("cannot read XMP from %s: %s", path, exc)
    return None


def describe(provenance: Provenance | dict[str, Any] | None) -> str | None:
    """One line for people: what the file says about itself, and how far to believe it; None when it says nothing.

    "Content Credentials: made with DALL-E (signed by OpenAI; not verified)"."""
    if provenance is None:
        return None
    data = provenance if isinstance(provenance, dict) else provenance.to_dict()
    claim, iptc = data.get("c2pa"), data.get("iptc_digital_source_type")
    if claim:
        if not claim["valid"]:
            return "Content Credentials: present but invalid (the file was altered after signing, or the signature is broken)"
        what = _what_it_says(claim)
        trust = "verified" if claim["trusted"] else "not verified"
        return f"Content Credentials: {what} (signed by {claim.get('signer') or 'an unknown signer'}; {trust})"
    if iptc:
        return f"File metadata (unsigned): digital source type {source_type_code(iptc)}"
    return None


def _what_it_says(claim: dict[str, Any]) -> str:
    actions = claim.get("actions") or []
    types = {source_type_code(t) for t in (claim.get("digital_source_type"), *(a.get("digital_source_type") for a in actions))}
    ai_agents = [a["software_agent"] for a in actions if source_type_code(a.get("digital_source_type")) in AI_SOURCE_TYPES]
    agents = [a["software_agent"] for a in actions if a.get("software_agent")]
    tool = next(iter([*filter(None, ai_agents), *agents]), None) or claim.get("claim_generator") or "an unnamed tool"
    if types & AI_SOURCE_TYPES:
        return f"made with {tool}"
    if types & CAPTURE_SOURCE_TYPES:
        return f"captured by a camera ({tool})"
    return f"made or edited with {tool}"


def disagreement(provenance: Provenance, verdict: str) -> str | None:
    """A warning when what the file says about itself and the face model's verdict point different ways: both are
    shown and neither overrides the other (the face model judges faces; a claim, even a trusted one, is about the
    file as a whole and may cover an edit far from any face)."""
    claim = provenance.c2pa
    verified = "verified" if claim and claim.trusted else "not verified"
    if provenance.ai_generated and verdict in ("real", "uncertain", "no_face"):
        return (
            f"provenance says a trained algorithm made or composited this file ({verified}), "
            f"while the face model's verdict is {verdict}: both are shown, neither overrides the other"
        )
    if provenance.ai_generated is False and verdict == "fake":
        return (
            f"Content Credentials say a camera captured this file ({verified}), "
            "while the face model's verdict is fake: both are shown, neither overrides the other"
        )
    return None
