"""What the server keeps of a URL someone submitted: a cache key, and a form that is safe to show and store.

- `normalize_url`: scheme and host lower-cased, default port, fragment and tracking parameters dropped, remaining
  query parameters sorted, so that shares of one post hit the same cache entry.
- `url_key`: the SHA-256 of the normalised URL. The cache looks URLs up by it, so no signed link is stored whole.
- `redact_url`: the URL with user info removed and the values of credential-like query parameters (signatures,
  tokens, keys, passwords...) replaced, for history, reports, logs, webhooks and answers to other users. The full
  URL is kept only by the job that fetches it, until the job ends.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that only track who shared a link: dropped so that shares of one post hit the same cache entry.
TRACKING_PARAMETERS = {"fbclid", "gclid", "igshid", "igsh", "mc_cid", "mc_eid", "si"}
REDACTED = "REDACTED"
# Names of query parameters that carry credentials: signed CDN links (AWS, Google Cloud, Azure, CloudFront, Meta's
# oh/oe pairs), OAuth and API tokens, passwords.
# The name is matched without leading and trailing separators (`__token__`); Akamai's `hdnts`, JWTs and
# access keys written as one word (`authkey`, `accesskey`) count too.
CREDENTIAL_PARAMETER = re.compile(
    r"(^|[-_.])(sig|signature|token|secret|password|passwd|pwd|pass|auth|authorization|credential|credentials|session|"
    r"session_?id|key|apikey|authkey|accesskey|access_?token|jwt|hdnts|hdnea|policy|hmac|code|oh|x-amz-[a-z-]+|"
    r"x-goog-[a-z-]+)$",
    re.IGNORECASE,
)


def normalize_url(url: str) -> str:
    """The cache form of a URL: scheme and host lower-cased, default port, fragment and tracking parameters
    dropped, remaining query parameters sorted."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in TRACKING_PARAMETERS and not k.lower().startswith("utm_")
    )
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def url_key(url: str) -> str:
    """What the cache stores and looks up for a URL: the SHA-256 of its normalised form."""
    return hashlib.sha256(normalize_url(url).encode()).hexdigest()


def is_credential(name: str) -> bool:
    return bool(CREDENTIAL_PARAMETER.search(name.strip().strip("_-.")))


def redact_url(url: str | None) -> str | None:
    """`url` without user info and with the values of credential-like query parameters replaced by REDACTED.
    Anything that is not an absolute URL (an upload's file name) comes back unchanged."""
    if not url:
        return url
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    query = [(k, REDACTED if is_credential(k) and v else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    fragment = REDACTED if re.search(r"(access_token|id_token|token)=", parts.fragment) else parts.fragment
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/:@,"), fragment))


def redact_fetch(details: dict | None) -> dict | None:
    """Fetch details (see `detector.fetching.fetch.FetchedMedia.to_dict`) with every URL in them redacted."""
    if not details:
        return details
    return {key: redact_url(value) if key.endswith("url") and isinstance(value, str) else value for key, value in details.items()}
