"""URL safety for fetching media on behalf of users: which URLs and which network addresses we agree to reach.

A server that downloads whatever URL it is given can be turned against its own network (server-side request
forgery): `http://127.0.0.1:6379/`, `http://169.254.169.254/latest/meta-data/`, a public name that resolves to
10.0.0.5, a redirect from a harmless page to any of those. The rules, all pure functions of their inputs:

- only `http` and `https` URLs with a host; `blob:`, `data:`, `file:`, `javascript:` and every other scheme are
  refused with a typed error that says why;
- every address the host resolves to must be public: `classify_address` names the non-public ranges (loopback,
  private, link-local, CGNAT, unique-local IPv6, multicast, reserved, ... and IPv6 forms that embed an IPv4
  address: IPv4-mapped, IPv4-compatible, 6to4, NAT64);
- `UrlPolicy.allow_private` lets loopback/private/link-local/CGNAT/unique-local addresses through (a deliberate
  setting for private deployments and tests); metadata endpoints, multicast, unspecified and reserved addresses
  stay refused whatever the setting.

The fetcher applies these rules to the first URL up front and again to every connection it opens (redirects,
playlists, fragments), connecting to the very address it checked, so DNS answers cannot change in between.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlsplit

from ..errors import HostLookupError, HostNotFoundError, InvalidUrlError, UnsafeUrlError, UnsupportedUrlSchemeError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# getaddrinfo(host, port, family, type) -> [(family, type, proto, canonname, sockaddr)], as socket.getaddrinfo
Resolver = Callable[..., list]

ALLOWED_SCHEMES = ("http", "https")
# getaddrinfo failures that say nothing about the name itself (the resolver is down or busy): retryable.
LOOKUP_FAILURES_THAT_PASS = frozenset(
    code for code in (getattr(socket, name, None) for name in ("EAI_AGAIN", "EAI_FAIL", "EAI_MEMORY", "EAI_SYSTEM")) if code
)


class AddressClass(str, Enum):
    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    CGNAT = "carrier-grade NAT (shared address space)"
    UNIQUE_LOCAL = "unique-local IPv6"
    METADATA = "cloud metadata endpoint"
    MULTICAST = "multicast"
    BROADCAST = "broadcast"
    UNSPECIFIED = "unspecified"
    DOCUMENTATION = "documentation or benchmarking range"
    RESERVED = "reserved"


# Classes that `allow_private` lets through: addresses of machines on a private network. The others are never
# a legitimate media source (and the metadata endpoints hand out cloud credentials).
PRIVATE_CLASSES = frozenset(
    {AddressClass.LOOPBACK, AddressClass.PRIVATE, AddressClass.LINK_LOCAL, AddressClass.CGNAT, AddressClass.UNIQUE_LOCAL}
)

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
)

_V4 = [
    ("0.0.0.0/8", AddressClass.UNSPECIFIED),  # "this network"; 0.0.0.0 reaches the local host on Linux
    ("10.0.0.0/8", AddressClass.PRIVATE),
    ("100.64.0.0/10", AddressClass.CGNAT),
    ("127.0.0.0/8", AddressClass.LOOPBACK),
    ("169.254.0.0/16", AddressClass.LINK_LOCAL),
    ("172.16.0.0/12", AddressClass.PRIVATE),
    ("192.0.0.0/24", AddressClass.RESERVED),  # IETF protocol assignments
    ("192.0.2.0/24", AddressClass.DOCUMENTATION),
    ("192.31.196.0/24", AddressClass.RESERVED),  # AS112
    ("192.52.193.0/24", AddressClass.RESERVED),  # AMT
    ("192.88.99.0/24", AddressClass.RESERVED),  # deprecated 6to4 relay anycast
    ("192.168.0.0/16", AddressClass.PRIVATE),
    ("192.175.48.0/24", AddressClass.RESERVED),  # AS112 direct delegation
    ("198.18.0.0/15", AddressClass.DOCUMENTATION),  # benchmarking
    ("198.51.100.0/24", AddressClass.DOCUMENTATION),
    ("203.0.113.0/24", AddressClass.DOCUMENTATION),
    ("224.0.0.0/4", AddressClass.MULTICAST),
    ("255.255.255.255/32", AddressClass.BROADCAST),
    ("240.0.0.0/4", AddressClass.RESERVED),
]
_V6 = [
    ("::/128", AddressClass.UNSPECIFIED),
    ("::1/128", AddressClass.LOOPBACK),
    ("64:ff9b:1::/48", AddressClass.PRIVATE),  # local-use NAT64
    ("100::/64", AddressClass.RESERVED),  # discard-only
    ("2001::/23", AddressClass.RESERVED),  # IETF protocol assignments, Teredo (2001::/32) included
    ("2001:db8::/32", AddressClass.DOCUMENTATION),
    ("3fff::/20", AddressClass.DOCUMENTATION),
    ("fc00::/7", AddressClass.UNIQUE_LOCAL),
    ("fe80::/10", AddressClass.LINK_LOCAL),
    ("fec0::/10", AddressClass.PRIVATE),  # deprecated site-local
    ("ff00::/8", AddressClass.MULTICAST),
]
_V4_NETWORKS = [(ipaddress.ip_network(net), cls) for net, cls in _V4]
_V6_NETWORKS = [(ipaddress.ip_network(net), cls) for net, cls in _V6]
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def classify_address(address: str | IPAddress) -> AddressClass:
    """What kind of network address this is; only `PUBLIC` ones are reachable without `allow_private`.

    IPv6 addresses that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, 6to4
    `2002:AABB:CCDD::`, NAT64 `64:ff9b::a.b.c.d`) are judged by the IPv4 address they lead to.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    if ip in METADATA_ADDRESSES:
        return AddressClass.METADATA
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return classify_address(embedded)
        for network, cls in _V6_NETWORKS:
            if ip in network:
                return cls
        # Everything outside 2000::/3 is unassigned or special-purpose: never a media server.
        return AddressClass.PUBLIC if ip in _GLOBAL_UNICAST_V6 else AddressClass.RESERVED
    for network, cls in _V4_NETWORKS:
        if ip in network:
            return cls
    return AddressClass.PUBLIC


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):  # :: and ::1 are not IPv4-compatible forms
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class UrlPolicy:
    """Which addresses a fetch may connect to.

    `trusted_endpoints` lists exact `(ip, port)` pairs treated as public whatever their address: a narrow hook
    for tests (a "public" media server on 127.0.0.1 that redirects to a forbidden one) and for a single trusted
    internal source; it never widens a whole range.
    """

    allow_private: bool = False
    trusted_endpoints: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    def refusal(self, address: str | IPAddress, port: int) -> str | None:
        """None when connecting to `address:port` is allowed, else why not (for the error message)."""
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
        if (str(ip), port) in self.trusted_endpoints:
            return None
        cls = classify_address(ip)
        if cls is AddressClass.PUBLIC or (self.allow_private and cls in PRIVATE_CLASSES):
            return None
        hint = f" ({PRIVATE_REFUSAL})" if cls in PRIVATE_CLASSES else ""
        return f"{ip} is a {cls.value} address{hint}"


# Names the switches that let a private deployment fetch such addresses: the message reaches the CLI, the API, the
# demo and the extension's badge unchanged.
PRIVATE_REFUSAL = (
    "private addresses are not allowed here; a private deployment allows them with DEEPFAKE_ALLOW_PRIVATE_URLS=1, "
    "or --allow-private-urls on the command line"
)


@dataclass(frozen=True)
class CheckedUrl:
    url: str
    scheme: str
    host: str  # as written in the URL (an IPv6 literal without brackets)
    port: int
    addresses: tuple[str, ...]  # every address the host resolved to, all allowed by the policy


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; a typed error for anything else."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidUrlError("the URL is empty")
    url = url.strip()
    if any(ch in url for ch in "\r\n\t\x00") or " " in url:
        raise InvalidUrlError("the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidUrlError(f"the URL cannot be parsed ({exc})") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise InvalidUrlError("the URL has no scheme: give a full http:// or https:// address")
    if scheme not in ALLOWED_SCHEMES:
        what = {
            "blob": "a blob: URL only exists inside the browser tab that made it; send the file itself instead",
            "data": "a data: URL carries its content inline; send the file itself instead",
            "file": "file: URLs point at files on the server's own disk",
            "javascript": "javascript: URLs are code, not media",
        }.get(scheme, "only http:// and https:// URLs can be fetched")
        raise UnsupportedUrlSchemeError(f"{scheme}: URLs are not supported: {what}")
    if parts.username is not None or parts.password is not None:
        raise InvalidUrlError("URLs with a user name or password are not accepted")
    host = parts.hostname
    if not host:
        raise InvalidUrlError("the URL has no host")
    return scheme, host, port or (443 if scheme == "https" else 80)


def resolve_allowed(host: str, port: int, policy: UrlPolicy, resolver: Resolver = socket.getaddrinfo) -> tuple[str, ...]:
    """Every address `host` resolves to, after checking that the policy allows each of them.

    One forbidden address refuses the whole host: connecting to "any allowed one" would let a name that
    resolves to both a public and a private address pick the private one on a retry.
    """
    try:
        infos = resolver(host, port, 0, socket.SOCK_STREAM)
    except UnicodeError as exc:
        raise HostNotFoundError(f"the host name {host} is not valid ({exc}): check the link") from None
    except socket.gaierror as exc:
        if exc.errno in LOOKUP_FAILURES_THAT_PASS:
            raise HostLookupError(f"the host {host} could not be looked up just now ({exc.strerror}); try again") from None
        raise HostNotFoundError(
            f"looking up the host {host} failed ({exc.strerror}): check the link, or the connection if the link is right"
        ) from None
    addresses = tuple(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise HostNotFoundError(f"the host {host} has no address")
    for address in addresses:
        reason = policy.refusal(address, port)
        if reason:
            named = "" if _is_literal(host) else f"{host} resolves to {address}: "
            raise UnsafeUrlError(f"refused to connect to {host}: {named}{reason}" if named else f"refused to connect: {reason}")
    return addresses


def precheck_url(url: str, policy: UrlPolicy | None = None) -> tuple[str, str, int]:
    """The checks that need no network, for answering at once: the URL's form and scheme, and the address policy
    for hosts written as addresses or named `localhost` (which always means this machine). Other names are judged
    when the fetch resolves them. Returns (scheme, host, port)."""
    scheme, host, port = parse_url(url)
    policy = policy or UrlPolicy()
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        address = "127.0.0.1"
    elif _is_literal(host):
        address = host
    else:
        return scheme, host, port
    reason = policy.refusal(address, port)
    if reason:
        raise UnsafeUrlError(f"refused to connect to {host}: {reason}" if address != host else f"refused to connect: {reason}")
    return scheme, host, port


def check_url(url: str, policy: UrlPolicy | None = None, resolver: Resolver = socket.getaddrinfo) -> CheckedUrl:
    """Validate a URL a user gave and resolve its host; raise InvalidUrlError, UnsupportedUrlSchemeError,
    UnsafeUrlError or HostNotFoundError when it must not be fetched."""
    scheme, host, port = parse_url(url)
    addresses = resolve_allowed(host, port, policy or UrlPolicy(), resolver)
    return CheckedUrl(url.strip(), scheme, host, port, addresses)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
