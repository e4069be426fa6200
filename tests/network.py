"""The test suite's network fence: no test opens a connection outside loopback, even when the
outgoing-request policy under test is broken (an SSRF test that would have connected fails instead).

- `network_fence` (autouse, whole session): socket.connect / connect_ex to any address that is not
  loopback (or a UNIX socket) raises, and the test that tried fails at teardown naming the address.
- `fake_dns`: socket.getaddrinfo answers from a table the test fills ("internal.example" ->
  10.1.2.3); numeric hosts are read locally, loopback names go to the real resolver, any other name
  is unknown. No lookup ever leaves the machine.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import pytest

REAL_GETADDRINFO = socket.getaddrinfo
_REAL_CONNECT = socket.socket.connect
_REAL_CONNECT_EX = socket.socket.connect_ex
outside_attempts: list[object] = []


def is_loopback(host: object) -> bool:
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False  # a name: socket.connect would resolve it itself, past any stub
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _fenced(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):  # type: ignore[index]
        outside_attempts.append(address)
        raise ConnectionRefusedError(f"network fence: no test may connect to {address!r} (loopback only)")


def _connect(self: socket.socket, address: object) -> None:
    _fenced(self, address)
    return _REAL_CONNECT(self, address)


def _connect_ex(self: socket.socket, address: object) -> int:
    _fenced(self, address)
    return _REAL_CONNECT_EX(self, address)


@pytest.fixture(autouse=True, scope="session")
def network_fence() -> Iterator[None]:
    socket.socket.connect, socket.socket.connect_ex = _connect, _connect_ex
    yield
    socket.socket.connect, socket.socket.connect_ex = _REAL_CONNECT, _REAL_CONNECT_EX


@pytest.fixture(autouse=True)
def no_connection_left_loopback(network_fence: None) -> Iterator[None]:
    outside_attempts.clear()
    yield
    if outside_attempts:
        tried = ", ".join(map(repr, outside_attempts))
        outside_attempts.clear()
        pytest.fail(f"the test tried to connect outside loopback: {tried}")


class FakeDNS:
    """socket.getaddrinfo from a table; counts lookups per name (a second lookup is a rebinding window)."""

    def __init__(self) -> None:
        self.names: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def add(self, name: str, *addresses: str) -> None:
        """The name answers `addresses` (all of them, in order) at every lookup."""
        self.names[name.lower()] = [list(addresses)]

    def sequence(self, name: str, *answers: list[str]) -> None:
        """The name answers answers[0] at the first lookup, answers[1] at the second, … (then the last)."""
        self.names[name.lower()] = [list(a) for a in answers]

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        name = str(host).strip("[]").rstrip(".").lower()
        self.lookups.append(name)
        if name in self.names:
            answers = self.names[name]
            count = self.lookups.count(name)
            addresses = answers[min(count, len(answers)) - 1]
        elif name == "localhost" or is_loopback(name):
            return REAL_GETADDRINFO(host, port, family, type, proto, flags)
        else:
            try:
                addresses = [str(ipaddress.ip_address(name.split("%", 1)[0]))]
            except ValueError:
                try:
                    addresses = [socket.inet_ntoa(socket.inet_aton(name))]  # 0x7f.1, 2130706433, 0177.0.0.1
                except OSError:
                    raise socket.gaierror(socket.EAI_NONAME, f"fake DNS: {name} is unknown") from None
        out = []
        for address in addresses:
            ip = ipaddress.ip_address(address)
            af = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            if family not in (0, socket.AF_UNSPEC, af):
                continue
            sockaddr = (address, int(port or 0)) if ip.version == 4 else (address, int(port or 0), 0, 0)
            out.append((af, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        if not out:
            raise socket.gaierror(socket.EAI_NONAME, f"fake DNS: no address of that family for {name}")
        return out


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    dns = FakeDNS()
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    return dns
