"""The one outgoing-request policy: every call the console makes to a partner or to Amplitude goes
through an `OutboundSession` (connectors' HttpClient, the Amplitude client, the cohort file's
redirect, test connections), and every answer a user may read goes through `partner_summary`.

Why not a library: requests-hardened (maintained) pins the checked address the same way but has no
operator allow-list (loopback on/off only), checks only the first DNS answer and does not say which
rule refused; ssrfguard fits the features but is a 0.x package of 2026 whose API is declared
unstable; advocate is unmaintained since 2020. What is needed is small: a urllib3 connection whose
`_new_conn` resolves once, checks every answer and connects to that very address.

The rules, in order:
1. The URL (`check_url`, on every request and every redirect hop, and on the URL fields of forms,
   the API and the admin): https only unless OUTBOUND_ALLOW_HTTP; no user:password@; an address
   written as a literal (any spelling: `0x7f.1`, `2130706433`, `[::ffff:10.0.0.1]`) or `localhost`
   is judged without resolving anything.
2. The connection (`open_checked_socket`): the host is resolved exactly once, every answer is
   checked, and the socket connects to the checked address (no second lookup, so DNS rebinding has
   nothing to move). TLS still verifies the certificate and sends SNI for the host name.
3. Only public unicast addresses pass: loopback, private, shared (CGNAT), link-local, unique-local,
   site-local, multicast, documentation, reserved and unspecified ones are refused, IPv4 and IPv6,
   including IPv4 addresses wrapped in IPv6 (mapped, compatible, 6to4, NAT64, Teredo).
   OUTBOUND_ALLOWED_NETWORKS (networks, addresses, `host:port`) is the only way past rule 3.

A refusal is an `OutboundRefused` whose message names the rule. Any other failure to connect
(refused, reset, timed out, unknown name) is one generic message for users, so the console cannot be
used to scan ports; the detail goes to the log (and to the partner-call log's admin-only fields).
"""

from __future__ import annotations

import functools
import http
import ipaddress
import json
import logging
import re
import socket
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, NameResolutionError, NewConnectionError
from urllib3.util import parse_url
from urllib3.util.connection import allowed_gai_family

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

COULD_NOT_CONNECT = "Could not connect to {who}."  # the one message for refused / reset / timed out / unknown
ALLOW_HINT = "set OUTBOUND_ALLOWED_NETWORKS to allow it"
SUMMARY_BODY_CAP = 64 * 1024  # bytes of an answer read to find the partner's error code and message
MESSAGE_CHARS = 200  # the partner's own message, as users see it
CODE_CHARS = 64
RAW_EXCERPT_CHARS = 500  # the raw answer, as ops see it in the admin

# IPv4 ranges that are not public unicast, most specific meaning first. Anything else that Python
# does not call global is refused as "reserved" (the table only names the rule better).
_V4_RULES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "an unspecified (this-network) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("10.0.0.0/8", "a private address"),
    ("172.16.0.0/12", "a private address"),
    ("192.168.0.0/16", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("169.254.0.0/16", "a link-local address"),
    ("192.0.0.0/24", "a reserved (IETF protocol assignment) address"),
    ("192.0.2.0/24", "a reserved (documentation) address"),
    ("198.51.100.0/24", "a reserved (documentation) address"),
    ("203.0.113.0/24", "a reserved (documentation) address"),
    ("198.18.0.0/15", "a reserved (benchmarking) address"),
    ("192.88.99.0/24", "a reserved (6to4 relay) address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "a broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
)
_V6_RULES: tuple[tuple[str, str], ...] = (
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a reserved (local-use NAT64) address"),
    ("2001::/32", "a reserved (Teredo tunnel) address"),
    ("2001:db8::/32", "a reserved (documentation) address"),
    ("100::/64", "a reserved (discard-only) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("fc00::/7", "a unique-local (private) address"),
    ("ff00::/8", "a multicast address"),
)
_V4_TABLE = tuple((ipaddress.IPv4Network(net), why) for net, why in _V4_RULES)
_V6_TABLE = tuple((ipaddress.IPv6Network(net), why) for net, why in _V6_RULES)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class OutboundRefused(Exception):
    """The policy refused a URL or an address. Not an OSError on purpose: urllib3 must neither retry
    it nor wrap it into a connection error (that would be the generic "could not connect")."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"refused: {reason}")
        self.message = f"refused: {reason}"


# ---- the address rule --------------------------------------------------------------------------


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address wraps (and the wrapping's name), if it wraps one."""
    if ip.ipv4_mapped is not None:
        return "an IPv4-mapped", ip.ipv4_mapped
    if ip.sixtofour is not None:
        return "a 6to4", ip.sixtofour
    if ip in _NAT64:
        return "a NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _V4_COMPATIBLE and int(ip) > 1:
        return "an IPv4-compatible", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def shown(ip: IPAddress) -> str:
    """How messages write an address: IPv4 inside IPv6 in dotted form (::ffff:10.1.2.3), as people do."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"::ffff:{ip.ipv4_mapped}"
        if ip in _V4_COMPATIBLE and int(ip) > 1:
            return f"::{ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)}"
    return str(ip)


def address_refusal(ip: IPAddress) -> str | None:
    """Why `ip` is not a public unicast address ("a private address"), or None when it is one."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        wrapped = embedded_ipv4(ip)
        if wrapped is not None:
            kind, inner = wrapped
            why = address_refusal(inner)
            if why is not None:
                return f"{kind} form of {inner}, {why}"
            if kind == "an IPv4-compatible":
                return "a reserved (deprecated IPv4-compatible) address"
            return None  # a public IPv4 address reached through IPv6
        table = _V6_TABLE
    else:
        table = _V4_TABLE
    for network, why in table:
        if ip in network:
            return why
    return None if ip.is_global else "a reserved address"


# ---- the operator's allow-list ---------------------------------------------------------------------


@dataclass(frozen=True)
class AllowEntry:
    """One OUTBOUND_ALLOWED_NETWORKS item: a network (or address) or a host name, on one port or all."""

    network: IPNetwork | None
    host: str | None
    port: int | None

    def matches(self, host: str, ip: IPAddress | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return host.rstrip(".").lower() == self.host
        if ip is None or self.network is None:
            return False
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (wrapped := embedded_ipv4(ip)) is not None:
            candidates.append(wrapped[1])
        return any(c.version == self.network.version and c in self.network for c in candidates)


_PORT_SUFFIX = re.compile(r"^(?P<head>.+):(?P<port>\d{1,5})$")


def parse_allow_entry(text: str) -> AllowEntry:
    """`10.0.0.0/8`, `10.1.2.3`, `127.0.0.1:8443`, `[::1]:8443`, `[fd00::/8]:443`, `::1`,
    `partner-proxy.internal:443` (a host name needs its port). ValueError names what is wrong."""
    raw = text.strip()
    head, port = raw, None
    if raw.startswith("["):
        inside, _, rest = raw[1:].partition("]")
        if not rest.startswith(":") or not rest[1:].isdigit():
            raise ValueError(f"{text!r}: write a bracketed IPv6 entry as [address]:port or [network]:port")
        head, port = inside, int(rest[1:])
    elif (m := _PORT_SUFFIX.match(raw)) and raw.count(":") == 1:
        head, port = m["head"], int(m["port"])
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{text!r}: {port} is not a port")
    try:
        return AllowEntry(ipaddress.ip_network(head, strict=False), None, port)
    except ValueError:
        pass
    if port is None:
        raise ValueError(f"{text!r} is neither a network (10.0.0.0/8), an address nor a host:port")
    host = head.rstrip(".").lower()
    if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*", host):
        raise ValueError(f"{text!r}: {head!r} is not a host name")
    return AllowEntry(None, host, port)


@functools.lru_cache(maxsize=8)
def _allow_list(items: tuple[str, ...]) -> tuple[AllowEntry, ...]:
    return tuple(parse_allow_entry(item) for item in items if item.strip())


def parse_allow_list(items: list[str] | tuple[str, ...]) -> tuple[AllowEntry, ...]:
    """Read at every check (cached), so a changed setting (a test's, an operator's) applies at once."""
    return _allow_list(tuple(items))


def allow_listed(host: str, ip: IPAddress | None, port: int) -> bool:
    return any(entry.matches(host, ip, port) for entry in parse_allow_list(settings.OUTBOUND_ALLOWED_NETWORKS))


def operator_allowed_url(url: str) -> bool:
    """True when the operator's OUTBOUND_ALLOWED_NETWORKS names this URL's host (by address or by
    host:port), without any lookup: the operator's sandbox or proxy. Hosts a partner fixes may be
    overridden only to such a URL, never to one a tenant merely typed (integrations.connectors.base)."""
    try:
        parts = parse_url(url)
    except LocationParseError:
        return False
    host = (parts.host or "").strip("[]")
    if not host:
        return False
    port = parts.port or (443 if (parts.scheme or "").lower() == "https" else 80)
    literal = literal_address(host)
    return allow_listed(host, literal[0] if literal else None, port)


def _refusal(host: str, ip: IPAddress, why: str) -> OutboundRefused:
    """ "10.1.2.3 is a private address (…)", or "name resolves to 10.1.2.3, a private address (…)"."""
    if literal_address(host) is not None:
        written = host.strip("[]")
        said = f"{written} is {why}" if written == shown(ip) else f"{written} is {shown(ip)}, {why}"
    else:
        said = f"{host} resolves to {shown(ip)}, {why}"
    return OutboundRefused(f"{said} ({ALLOW_HINT})")


# ---- rule 1: the URL -------------------------------------------------------------------------------


def literal_address(host: str) -> tuple[IPAddress, bool] | None:
    """The address a host names without any lookup, and whether it was spelt the standard way.

    Covers what the C library would accept as IPv4 (`127.1`, `0x7f.0.0.1`, `0177.0.0.1`, `2130706433`),
    IPv6 literals (with or without brackets) and `localhost` (RFC 6761: always loopback)."""
    bare = host.strip("[]")
    try:
        ip = ipaddress.ip_address(bare)
        return ip, True
    except ValueError:
        pass
    lowered = host.rstrip(".").lower()
    if lowered == "localhost" or lowered.endswith(".localhost"):
        return ipaddress.IPv4Address("127.0.0.1"), True
    if re.fullmatch(r"[0-9a-fA-FxX.]+", host) and re.search(r"[0-9]", host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip("."))), False
        except OSError:
            return None
    return None


def check_url(url: str) -> None:
    """Rule 1: scheme, no credentials in the URL, and any address written into it. Raises OutboundRefused."""
    try:
        parts = parse_url(url)
    except LocationParseError:
        raise OutboundRefused("the URL cannot be read") from None
    scheme = (parts.scheme or "").lower()
    if scheme != "https" and not (scheme == "http" and settings.OUTBOUND_ALLOW_HTTP):
        raise OutboundRefused(
            f"{scheme + '://' if scheme else 'a URL without a scheme'} is not allowed: only https "
            "(plain http only where OUTBOUND_ALLOW_HTTP is set, for test rigs)"
        )
    if parts.auth is not None:
        raise OutboundRefused("a user name or password in the URL (user@host) is not allowed")
    host = parts.host or ""
    if not host:
        raise OutboundRefused("the URL has no host")
    port = parts.port or (443 if scheme == "https" else 80)
    literal = literal_address(host)
    if literal is None:
        return
    ip, standard = literal
    if not standard:
        why = address_refusal(ip)
        raise OutboundRefused(
            f"{host} is a non-standard spelling of {ip}{', ' + why if why else ''}: "
            "write the address as four decimal numbers"
        )
    why = address_refusal(ip)
    if why is not None and not allow_listed(host, ip, port):
        raise _refusal(host, ip, why)


def validate_outbound_url(value: str) -> None:
    """Django validator for URL fields the console will call (forms, the admin, the API through DRF)."""
    if not value:
        return
    try:
        check_url(value)
    except OutboundRefused as refused:
        raise ValidationError(refused.message, code="outbound_refused") from None


# ---- rule 2 + 3: the connection --------------------------------------------------------------------


def resolve_checked(host: str, port: int) -> list[tuple[int, int, int, Any]]:
    """One lookup; every answer checked. Returns (family, type, proto, sockaddr) to connect to."""
    host = host.strip("[]")
    answers = []
    for family, type_, proto, _canonical, sockaddr in socket.getaddrinfo(
        host, port, allowed_gai_family(), socket.SOCK_STREAM
    ):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        why = address_refusal(ip)
        if why is not None and not allow_listed(host, ip, port):
            logger.warning("outbound call refused: %s (%s) port %s is %s", host, ip, port, why)
            raise _refusal(host, ip, why)
        answers.append((family, type_, proto, sockaddr))
    if not answers:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} has no IPv4 or IPv6 address")
    return answers


def open_checked_socket(
    host: str, port: int, timeout: object, source_address: tuple[str, int] | None, socket_options: list | None
) -> socket.socket:
    """Connect to the first answer of `resolve_checked` that accepts: the address checked, not the name."""
    error: OSError | None = None
    for family, type_, proto, sockaddr in resolve_checked(host, port):
        sock = socket.socket(family, type_, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if timeout is None or isinstance(timeout, int | float):
                sock.settimeout(timeout)  # otherwise urllib3's "default" sentinel: leave the default
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    assert error is not None
    raise error


class _CheckedConnectionMixin:
    """urllib3 connections whose socket comes from open_checked_socket (same errors as urllib3's own)."""

    def _new_conn(self) -> socket.socket:
        try:
            return open_checked_socket(
                self._dns_host, self.port, self.timeout, self.source_address, self.socket_options
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


class CheckedHTTPConnection(_CheckedConnectionMixin, HTTPConnection):
    pass


class CheckedHTTPSConnection(_CheckedConnectionMixin, HTTPSConnection):
    pass  # connect() wraps our socket with server_hostname = the host name: SNI and certificate as usual


class CheckedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class CheckedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


class CheckedAdapter(HTTPAdapter):
    """requests' adapter with the checked pools. `send` is requests' own (the `responses` library, used by
    some tests, replaces it; the URL rule still runs in OutboundSession.send)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": CheckedHTTPConnectionPool,
            "https": CheckedHTTPSConnectionPool,
        }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # A proxy resolves the host itself, past every check here.
        raise OutboundRefused("outgoing calls through a proxy are not supported")


class OutboundSession(requests.Session):
    """requests.Session under the policy. Every request and every redirect hop passes check_url, every
    connection passes the address rule; credentials never follow a redirect to another origin."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # no proxies from the environment (they bypass the checks), no ~/.netrc
        self.max_redirects = 5
        adapter = CheckedAdapter()
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        check_url(request.url or "")
        return super().send(request, **kwargs)

    def should_strip_auth(self, old_url: str, new_url: str) -> bool:
        old, new = parse_url(old_url), parse_url(new_url)
        return (old.scheme, old.host, old.port) != (new.scheme, new.host, new.port)


def describe_failure(exc: BaseException) -> str:
    """For the log and the admin only: what exactly went wrong with a connection."""
    return f"{type(exc).__name__}: {exc}"[:1000]


# ---- what users may read of a partner's answer -----------------------------------------------------


def read_head(response: requests.Response) -> bytes:
    """At most SUMMARY_BODY_CAP+1 bytes of the (decoded) body, whether it was read already or is still
    streaming; read once per response (kept on it), so the summary and the excerpt see the same bytes."""
    cached = getattr(response, "_outbound_head", None)
    if cached is not None:
        return cached
    out = bytearray()
    try:
        for chunk in response.iter_content(8192):
            out += chunk
            if len(out) > SUMMARY_BODY_CAP:
                break
    except (requests.RequestException, RuntimeError, OSError, ValueError):
        pass  # a broken or already consumed stream: summarise what there is
    response._outbound_head = bytes(out)
    return response._outbound_head


def _text(response: requests.Response, data: bytes) -> str:
    try:
        return data.decode(response.encoding or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")


def clip(value: object, limit: int) -> str:
    """One printable line of at most `limit` characters."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(value)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_MESSAGE_KEYS = ("message", "error_description", "error_message", "errorMessage", "detail", "msg", "reason", "error")
_CODE_KEYS = ("code", "error_code", "errorCode", "error_type", "type")


def _code_and_message(body: object, depth: int = 0) -> tuple[str, str]:
    """The partner's own error code and message from a JSON body of a known shape."""
    if isinstance(body, list) and body and depth < 3:
        return _code_and_message(body[0], depth + 1)
    if not isinstance(body, dict) or depth > 3:
        return "", ""
    code = next((body[k] for k in _CODE_KEYS if isinstance(body.get(k), str | int) and body.get(k) != ""), "")
    message = ""
    for key in _MESSAGE_KEYS:
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            message = value
            break
        if isinstance(value, dict | list) and value:
            inner_code, inner_message = _code_and_message(value, depth + 1)
            code, message = code or inner_code, inner_message
            if message:
                break
    if not message and isinstance(body.get("errors"), list | dict) and body["errors"]:
        errors = body["errors"]
        first = errors[0] if isinstance(errors, list) else errors
        if isinstance(first, str):
            message = first
        else:
            inner_code, message = _code_and_message(first, depth + 1)
            code = code or inner_code
    details = (body.get("metadata") or {}).get("details") if isinstance(body.get("metadata"), dict) else None
    if isinstance(details, str) and details and details != message:
        message = f"{message} ({details})" if message else details
    return str(code), message


_XML_CODE = re.compile(rb"<Code>([^<]{1,200})</Code>")
_XML_MESSAGE = re.compile(rb"<Message>([^<]{1,2000})</Message>")


def partner_summary(response: requests.Response) -> str:
    """The partner's own error code and message, bounded and on one line ("code 12: list not found"),
    from a JSON body (or S3's XML error); "" when the answer holds neither. Never the raw body."""
    head = read_head(response)
    if not head or len(head) > SUMMARY_BODY_CAP:
        return ""
    code = message = ""
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"["):
        try:
            code, message = _code_and_message(json.loads(_text(response, head)))
        except (ValueError, RecursionError):
            return ""
    elif stripped.startswith((b"<?xml", b"<Error>")):
        code_match, message_match = _XML_CODE.search(head), _XML_MESSAGE.search(head)
        code = code_match[1].decode(errors="replace") if code_match else ""
        message = message_match[1].decode(errors="replace") if message_match else ""
    parts = []
    if code != "":
        parts.append(f"code {clip(code, CODE_CHARS)}")
    if message:
        parts.append(clip(message, MESSAGE_CHARS))
    return ": ".join(parts)


def status_phrase(status: int) -> str:
    """The standard phrase ("Bad Gateway"), never the partner's own reason text; "" for odd statuses."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def status_text(status: int) -> str:
    """ "HTTP 502 Bad Gateway"."""
    return f"HTTP {status} {status_phrase(status)}".rstrip()


def response_summary(response: requests.Response) -> str:
    """What users see of an answer: the status, and the partner's code and message when it gave them."""
    summary = partner_summary(response)
    return f"{status_text(response.status_code)}: {summary}" if summary else status_text(response.status_code)


def raw_excerpt(response: requests.Response, limit: int = RAW_EXCERPT_CHARS) -> str:
    """The start of the raw answer, for ops in the admin and the log only (mask secrets before keeping it)."""
    return _text(response, read_head(response)[: limit * 4])[:limit]
