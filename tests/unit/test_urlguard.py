"""URL safety rules as pure functions: which addresses are public, which URLs are refused and why."""

from __future__ import annotations

import socket

import pytest

from detector.errors import HostLookupError, HostNotFoundError, InvalidUrlError, UnsafeUrlError, UnsupportedUrlSchemeError
from detector.fetching.urlguard import AddressClass, UrlPolicy, check_url, classify_address, parse_url
from server.errors import http_status

C = AddressClass


@pytest.mark.parametrize(
    "address, expected",
    [
        # public
        ("93.184.215.14", C.PUBLIC),
        ("8.8.8.8", C.PUBLIC),
        ("2606:4700::6810:84e5", C.PUBLIC),
        ("2a00:1450:4001:80b::200e", C.PUBLIC),
        # IPv4 special ranges, edges included
        ("127.0.0.1", C.LOOPBACK),
        ("127.255.255.254", C.LOOPBACK),
        ("10.0.0.1", C.PRIVATE),
        ("10.255.255.255", C.PRIVATE),
        ("172.16.0.1", C.PRIVATE),
        ("172.31.255.255", C.PRIVATE),
        ("172.32.0.1", C.PUBLIC),
        ("192.168.1.1", C.PRIVATE),
        ("169.254.1.1", C.LINK_LOCAL),
        ("169.254.169.254", C.METADATA),
        ("169.254.170.2", C.METADATA),
        ("100.100.100.200", C.METADATA),
        ("100.64.0.1", C.CGNAT),
        ("100.127.255.254", C.CGNAT),
        ("100.128.0.1", C.PUBLIC),
        ("0.0.0.0", C.UNSPECIFIED),
        ("0.1.2.3", C.UNSPECIFIED),
        ("224.0.0.1", C.MULTICAST),
        ("239.255.255.250", C.MULTICAST),
        ("255.255.255.255", C.BROADCAST),
        ("240.0.0.1", C.RESERVED),
        ("192.0.0.8", C.RESERVED),
        ("192.0.2.1", C.DOCUMENTATION),
        ("198.18.0.1", C.DOCUMENTATION),
        ("198.51.100.7", C.DOCUMENTATION),
        ("203.0.113.9", C.DOCUMENTATION),
        # IPv6 special ranges
        ("::1", C.LOOPBACK),
        ("::", C.UNSPECIFIED),
        ("fe80::1", C.LINK_LOCAL),
        ("fe80::1%eth0", C.LINK_LOCAL),
        ("fc00::1", C.UNIQUE_LOCAL),
        ("fd12:3456:789a::1", C.UNIQUE_LOCAL),
        ("fd00:ec2::254", C.METADATA),
        ("fec0::1", C.PRIVATE),
        ("ff02::1", C.MULTICAST),
        ("2001:db8::1", C.DOCUMENTATION),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", C.RESERVED),  # Teredo
        ("100::1", C.RESERVED),
        ("4000::1", C.RESERVED),  # outside global unicast 2000::/3
        # IPv6 forms that carry an IPv4 address are judged by that address
        ("::ffff:127.0.0.1", C.LOOPBACK),
        ("::ffff:7f00:1", C.LOOPBACK),
        ("::ffff:10.1.2.3", C.PRIVATE),
        ("::ffff:169.254.169.254", C.METADATA),
        ("::ffff:8.8.8.8", C.PUBLIC),
        ("::127.0.0.1", C.LOOPBACK),  # IPv4-compatible (deprecated)
        ("::10.0.0.1", C.PRIVATE),
        ("64:ff9b::a9fe:a9fe", C.METADATA),  # NAT64 of 169.254.169.254
        ("64:ff9b::808:808", C.PUBLIC),  # NAT64 of 8.8.8.8
        ("2002:7f00:1::1", C.LOOPBACK),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::1", C.PRIVATE),  # 6to4 of 192.168.1.1
        ("2002:808:808::1", C.PUBLIC),
    ],
)
def test_classify_address(address, expected):
    assert classify_address(address) is expected


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.3.4", "100.64.1.1", "fd00::1", "::ffff:192.168.0.1"])
def test_allow_private_lets_private_networks_through(address):
    assert UrlPolicy().refusal(address, 80) is not None
    assert UrlPolicy(allow_private=True).refusal(address, 80) is None


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "240.0.0.1"])
def test_allow_private_never_allows_metadata_multicast_unspecified_or_reserved(address):
    assert UrlPolicy(allow_private=True).refusal(address, 80) is not None


def test_trusted_endpoint_is_exactly_one_address_and_port():
    policy = UrlPolicy(trusted_endpoints=frozenset({("127.0.0.1", 8080)}))
    assert policy.refusal("127.0.0.1", 8080) is None
    assert policy.refusal("127.0.0.1", 8081) is not None
    assert policy.refusal("127.0.0.2", 8080) is not None
    assert policy.refusal("::ffff:127.0.0.1", 8081) is not None


@pytest.mark.parametrize(
    "url, error",
    [
        ("blob:https://www.example.com/0b5c1a52-6a3d-4a0e-9b1f-3c1f5c0b9d2e", UnsupportedUrlSchemeError),
        ("data:video/mp4;base64,AAAAIGZ0eXBpc29t", UnsupportedUrlSchemeError),
        ("file:///etc/passwd", UnsupportedUrlSchemeError),
        ("javascript:alert(1)", UnsupportedUrlSchemeError),
        ("ftp://example.com/video.mp4", UnsupportedUrlSchemeError),
        ("gopher://127.0.0.1:6379/_INFO", UnsupportedUrlSchemeError),
        ("chrome-extension://abcdef/video.mp4", UnsupportedUrlSchemeError),
        ("www.example.com/video.mp4", InvalidUrlError),
        ("", InvalidUrlError),
        ("http://", InvalidUrlError),
        ("http://user:secret@example.com/video.mp4", InvalidUrlError),
        ("http://example.com/a b", InvalidUrlError),
        ("http://example.com:99999/", InvalidUrlError),
    ],
)
def test_refused_urls_say_why(url, error):
    with pytest.raises(error) as caught:
        parse_url(url)
    assert http_status(caught.value) == 400 and caught.value.message


def test_scheme_errors_name_the_scheme():
    with pytest.raises(UnsupportedUrlSchemeError, match="blob:.*send the file itself"):
        parse_url("blob:https://x.com/1")


def test_parse_url_ports():
    assert parse_url("https://Example.COM/x") == ("https", "example.com", 443)
    assert parse_url("HTTP://example.com:8080/x") == ("http", "example.com", 8080)
    assert parse_url("http://[::1]:81/") == ("http", "::1", 81)


def fixed_resolver(*addresses: str):
    """A resolver answering every name with `addresses` (as getaddrinfo would), for rules about DNS answers."""

    def resolve(host, port, family=0, type=0):
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    return resolve


def test_a_public_name_resolving_to_a_private_address_is_refused():
    with pytest.raises(UnsafeUrlError, match="cdn.example.com resolves to 10.0.0.5"):
        check_url("https://cdn.example.com/v.mp4", resolver=fixed_resolver("10.0.0.5"))


def test_every_resolved_address_must_be_public():
    with pytest.raises(UnsafeUrlError, match="169.254.169.254"):
        check_url("https://cdn.example.com/v.mp4", resolver=fixed_resolver("93.184.215.14", "169.254.169.254"))
    checked = check_url("https://cdn.example.com/v.mp4", resolver=fixed_resolver("93.184.215.14", "2606:4700::1"))
    assert checked.addresses == ("93.184.215.14", "2606:4700::1") and checked.port == 443


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8000/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",  # 127.0.0.1 as one number: the resolver turns it into the loopback address
        "http://0x7f.1/",
        "http://0/",
        "http://[fe80::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
    ],
)
def test_local_and_special_hosts_are_refused_with_the_real_resolver(url):
    with pytest.raises(UnsafeUrlError):
        check_url(url)  # literal addresses and "localhost" resolve without any network


def test_loopback_is_allowed_only_with_allow_private():
    checked = check_url("http://127.0.0.1:8000/v.mp4", UrlPolicy(allow_private=True))
    assert checked.addresses == ("127.0.0.1",) and checked.port == 8000


def test_a_host_that_does_not_exist_is_the_users_input_and_a_failed_lookup_may_pass():
    def resolver_answering(errno: int, text: str):
        def failing(*args, **kwargs):
            raise socket.gaierror(errno, text)

        return failing

    with pytest.raises(HostNotFoundError) as caught:
        check_url("https://no-such-host.invalid/", resolver=resolver_answering(socket.EAI_NONAME, "Name or service not known"))
    assert http_status(caught.value) == 400 and "check the link" in caught.value.message
    # Offline, every name fails like this one: the message says the lookup failed, not that the site does not exist.
    assert caught.value.message.startswith("looking up the host no-such-host.invalid failed")
    assert "does not exist" not in caught.value.message
    with pytest.raises(HostLookupError) as caught:
        check_url("https://example.com/", resolver=resolver_answering(socket.EAI_AGAIN, "Temporary failure in name resolution"))
    assert http_status(caught.value) == 502 and "try again" in caught.value.message
