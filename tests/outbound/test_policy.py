"""The outgoing-request policy itself (integrations/outbound.py), through a real OutboundSession.

Every non-loopback address comes from the fake resolver and any connection to it is stopped by the
network fence (tests/network.py): a broken guard fails these tests instead of sending traffic.
Real connections go only to 127.0.0.1 listeners.
"""

import pytest
import requests

from integrations.outbound import OutboundRefused, OutboundSession, parse_allow_entry, validate_outbound_url
from tests.network import fake_dns  # noqa: F401  (fixture)
from tests.outbound.listeners import Listener, tls_context_for

HINT = "(set OUTBOUND_ALLOWED_NETWORKS to allow it)"

# (address, the rule the refusal must name)
INWARD = [
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("192.168.1.1", "a private address"),
    ("127.0.0.1", "a loopback address"),
    ("127.5.6.7", "a loopback address"),
    ("169.254.169.254", "a link-local address"),
    ("0.0.0.0", "an unspecified (this-network) address"),
    ("100.64.0.1", "a shared (carrier-grade NAT) address"),
    ("224.0.0.1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a broadcast address"),
    ("192.0.2.10", "a reserved (documentation) address"),
    ("::1", "a loopback address"),
    ("::", "an unspecified address"),
    ("fe80::1", "a link-local address"),
    ("fd12:3456::1", "a unique-local (private) address"),
    ("fc00::1", "a unique-local (private) address"),
    ("ff02::1", "a multicast address"),
    ("fec0::1", "a site-local address"),
    ("2001:db8::1", "a reserved (documentation) address"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a reserved (Teredo tunnel) address"),
    ("::ffff:10.1.2.3", "an IPv4-mapped form of 10.1.2.3, a private address"),
    ("::ffff:127.0.0.1", "an IPv4-mapped form of 127.0.0.1, a loopback address"),
    ("::ffff:169.254.169.254", "an IPv4-mapped form of 169.254.169.254, a link-local address"),
    ("::10.1.2.3", "an IPv4-compatible form of 10.1.2.3, a private address"),
    ("2002:a01:203::1", "a 6to4 form of 10.1.2.3, a private address"),
    ("64:ff9b::a9fe:a9fe", "a NAT64 form of 169.254.169.254, a link-local address"),
    ("64:ff9b:1::1", "a reserved (local-use NAT64) address"),
]


@pytest.fixture(autouse=True)
def strict(settings):
    """Production defaults: nothing allow-listed, https only."""
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    settings.OUTBOUND_ALLOW_HTTP = False


@pytest.mark.parametrize(("address", "rule"), INWARD)
def test_a_name_resolving_inward_is_refused_naming_the_rule(fake_dns, address, rule):  # noqa: F811
    fake_dns.add("partner.example", address)
    with pytest.raises(OutboundRefused) as refused:
        OutboundSession().get("https://partner.example/v1", timeout=2)
    assert str(refused.value) == f"refused: partner.example resolves to {address}, {rule} {HINT}"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://10.1.2.3/", "refused: 10.1.2.3 is a private address"),
        ("https://[::1]:8443/", "refused: ::1 is a loopback address"),
        ("https://[::]/", "refused: :: is an unspecified address"),
        ("https://0.0.0.0/", "refused: 0.0.0.0 is an unspecified (this-network) address"),
        ("https://localhost/", "refused: localhost is 127.0.0.1, a loopback address"),
        ("https://LocalHost./x", "refused: localhost. is 127.0.0.1, a loopback address"),
        ("https://[::ffff:169.254.169.254]/", "refused: ::ffff:169.254.169.254 is an IPv4-mapped form of 169"),
        ("https://[::ffff:a9fe:a9fe]/", "refused: ::ffff:a9fe:a9fe is ::ffff:169.254.169.254, an IPv4-mapped"),
        ("https://[64:ff9b::a00:1]/", "refused: 64:ff9b::a00:1 is a NAT64 form of 10.0.0.1, a private address"),
        ("https://2130706433/", "refused: 2130706433 is a non-standard spelling of 127.0.0.1, a loopback address"),
        ("https://0x7f.0.0.1/", "refused: 0x7f.0.0.1 is a non-standard spelling of 127.0.0.1"),
        ("https://0177.0.0.1/", "refused: 0177.0.0.1 is a non-standard spelling of 127.0.0.1"),
        ("https://127.1/", "refused: 127.1 is a non-standard spelling of 127.0.0.1"),
        ("https://0/", "refused: 0 is a non-standard spelling of 0.0.0.0"),
        ("https://0x0a.1.2.3/", "refused: 0x0a.1.2.3 is a non-standard spelling of 10.1.2.3, a private address"),
        ("https://134744072/", "refused: 134744072 is a non-standard spelling of 8.8.8.8: write the address"),
        ("http://partner.example/", "refused: http:// is not allowed: only https"),
        ("ftp://partner.example/", "refused: ftp:// is not allowed"),
        ("https://user:pw@partner.example/", "refused: a user name or password in the URL"),
        ("https://partner.example@127.0.0.1/", "refused: a user name or password in the URL"),
    ],
)
def test_urls_written_inward_are_refused_before_any_lookup(fake_dns, url, message):  # noqa: F811
    with pytest.raises(OutboundRefused) as refused:
        OutboundSession().get(url, timeout=2)
    assert str(refused.value).startswith(message)
    assert fake_dns.lookups == []
    with pytest.raises(Exception) as invalid:  # the same rule on every URL field (forms, admin, API)
        validate_outbound_url(url)
    assert str(refused.value) in str(invalid.value)


def test_one_inward_answer_among_public_ones_refuses_the_name(fake_dns):  # noqa: F811
    fake_dns.add("mixed.example", "93.184.216.34", "10.9.9.9")
    with pytest.raises(OutboundRefused, match="mixed.example resolves to 10.9.9.9, a private address"):
        OutboundSession().get("https://mixed.example/", timeout=2)


def test_the_allow_list_is_the_only_way_in_and_can_be_narrowed_to_one_port(settings, fake_dns):  # noqa: F811
    inside, other = Listener(), Listener()
    try:
        settings.OUTBOUND_ALLOW_HTTP = True
        with pytest.raises(OutboundRefused, match=r"127\.0\.0\.1 is a loopback address"):
            OutboundSession().get(f"{inside.url}/a", timeout=2)
        settings.OUTBOUND_ALLOWED_NETWORKS = [f"127.0.0.1:{inside.port}"]
        assert OutboundSession().get(f"{inside.url}/a", timeout=2).status_code == 200
        fake_dns.add("sandbox.example", "127.0.0.1")
        assert OutboundSession().get(f"http://sandbox.example:{inside.port}/b", timeout=2).status_code == 200
        with pytest.raises(OutboundRefused, match="sandbox.example resolves to 127.0.0.1, a loopback address"):
            OutboundSession().get(f"http://sandbox.example:{other.port}/", timeout=2)
        settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
        assert OutboundSession().get(f"{other.url}/c", timeout=2).status_code == 200
        assert [s.path for s in inside.seen] == ["/a", "/b"] and [s.path for s in other.seen] == ["/c"]
    finally:
        inside.close()
        other.close()


def test_allow_list_entries_parse_or_say_what_is_wrong():
    assert parse_allow_entry("10.0.0.0/8").port is None
    assert parse_allow_entry("127.0.0.1:8443").port == 8443
    assert str(parse_allow_entry("[::1]:9000").network) == "::1/128"
    assert str(parse_allow_entry("[fd00::/8]:443").network) == "fd00::/8"
    assert parse_allow_entry("Proxy.Internal:3128").host == "proxy.internal"
    for bad in ("proxy.internal", "10.0.0.0/33", "127.0.0.1:99999", "[::1]", "not a host:80"):
        with pytest.raises(ValueError):
            parse_allow_entry(bad)


def test_dns_rebinding_finds_no_second_lookup_to_move(settings, fake_dns):  # noqa: F811
    """The name answers loopback (allowed on this port) once, then a private address: the policy must
    connect to the address it checked, so the second answer is never asked for."""
    target = Listener()
    try:
        settings.OUTBOUND_ALLOW_HTTP = True
        settings.OUTBOUND_ALLOWED_NETWORKS = [f"127.0.0.1:{target.port}"]
        fake_dns.sequence("rebind.example", ["127.0.0.1"], ["10.0.0.5"])
        response = OutboundSession().get(f"http://rebind.example:{target.port}/x", timeout=2)
        assert response.status_code == 200 and [s.path for s in target.seen] == ["/x"]
        assert fake_dns.lookups == ["rebind.example"]
    finally:
        target.close()


def test_tls_is_checked_against_the_host_name_while_connecting_to_the_checked_address(settings, fake_dns, tmp_path):  # noqa: F811
    context, ca_file = tls_context_for("partner.example", tmp_path)
    server = Listener(tls=context)
    try:
        settings.OUTBOUND_ALLOWED_NETWORKS = [f"127.0.0.1:{server.port}"]
        fake_dns.add("partner.example", "127.0.0.1")
        fake_dns.add("impostor.example", "127.0.0.1")
        response = OutboundSession().get(f"https://partner.example:{server.port}/v1", timeout=5, verify=str(ca_file))
        assert response.status_code == 200
        assert server.server_names[0] == "partner.example"  # SNI is the name, not the pinned address
        assert server.seen[0].headers["host"] == f"partner.example:{server.port}"
        with pytest.raises(requests.exceptions.SSLError):  # a certificate for another name still fails
            OutboundSession().get(f"https://impostor.example:{server.port}/v1", timeout=5, verify=str(ca_file))
    finally:
        server.close()


def test_every_redirect_hop_is_checked_and_credentials_stay_with_their_origin(settings, fake_dns):  # noqa: F811
    inside = Listener()
    hops: dict[str, str] = {}
    front = Listener(answer=lambda seen: (302, {"Location": hops[seen.path]}, b"moved"))
    try:
        settings.OUTBOUND_ALLOW_HTTP = True
        settings.OUTBOUND_ALLOWED_NETWORKS = [f"127.0.0.1:{front.port}"]
        fake_dns.add("metadata.example", "169.254.169.254")
        hops.update(
            {
                "/to-loopback": f"{inside.url}/secret",
                "/to-metadata": "http://metadata.example/latest/meta-data/",
                "/to-literal": "http://[::ffff:10.0.0.1]/",
                "/to-allowed": f"http://localhost:{inside.port}/open",
            }
        )
        session = OutboundSession()
        with pytest.raises(OutboundRefused, match=r"127\.0\.0\.1 is a loopback address"):
            session.get(f"{front.url}/to-loopback", timeout=2)
        with pytest.raises(OutboundRefused, match="metadata.example resolves to 169.254.169.254, a link-local"):
            session.get(f"{front.url}/to-metadata", timeout=2)
        with pytest.raises(OutboundRefused, match="IPv4-mapped form of 10.0.0.1, a private address"):
            session.get(f"{front.url}/to-literal", timeout=2)
        assert inside.seen == []
        settings.OUTBOUND_ALLOWED_NETWORKS = [f"127.0.0.1:{front.port}", f"localhost:{inside.port}"]
        session.get(f"{front.url}/to-allowed", timeout=2, headers={"Authorization": "Bearer s3cret-token"})
        assert front.seen[-1].headers["authorization"] == "Bearer s3cret-token"
        assert [s.path for s in inside.seen] == ["/open"] and "authorization" not in inside.seen[0].headers
    finally:
        inside.close()
        front.close()


def test_environment_proxies_are_not_used(settings, monkeypatch):
    """A proxy resolves names itself, past every check: the policy's session never reads one from the env."""
    target = Listener()
    try:
        settings.OUTBOUND_ALLOW_HTTP = True
        settings.OUTBOUND_ALLOWED_NETWORKS = [f"127.0.0.1:{target.port}"]
        monkeypatch.setenv("HTTP_PROXY", "http://10.0.0.1:3128")
        monkeypatch.setenv("HTTPS_PROXY", "http://10.0.0.1:3128")
        assert OutboundSession().get(f"{target.url}/direct", timeout=2).status_code == 200
        with pytest.raises(OutboundRefused, match="through a proxy"):
            OutboundSession().get(f"{target.url}/x", timeout=2, proxies={"http": "http://10.0.0.1:3128"})
    finally:
        target.close()
