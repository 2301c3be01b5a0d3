"""Where pysshd listens: the ListenAddress syntax, the wildcard addresses of each
AddressFamily, and the resolution of ListenAddress hosts sshd does once the file is read.

Apart from the parser because resolving asks the resolver (getaddrinfo), which
parse_config itself never does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from protocol.sshd_values import ConfigError, _port

if TYPE_CHECKING:
    from protocol.sshd_options import ServerConfig

#: the addresses sshd listens on without a ListenAddress, by AddressFamily
_WILDCARDS: dict[str, tuple[tuple[str, int | None], ...]] = {
    "any": (("::", None), ("0.0.0.0", None)), "inet": (("0.0.0.0", None),),
    "inet6": (("::", None),)}
ADDRESS_FAMILIES = ("any", "inet", "inet6")


def _listen_address(value: str, fatal: Callable[[str], ConfigError]) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    m = re.fullmatch(r"\[([^\]]+)\](?::(.*))?", value)
    if m is not None:
        host, port_text = m.group(1), m.group(2)
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host, port_text = value, None
    if not host:
        raise fatal("bad address:port usage")
    if port_text is None:
        return host, None
    port = _port(port_text)
    if port is None:
        raise fatal("bad port number")
    return host, port


def resolve_listen(addresses: Iterable[tuple[str, int | None]],
                   family: str) -> tuple[tuple[str, int | None], ...]:
    """process_queued_listen_addrs(): each ListenAddress host resolved (getaddrinfo,
    AI_PASSIVE) to its numeric addresses of AddressFamily; fatal as in sshd when a
    host has none ("bad addr or host: ::1 (Address family for hostname not
    supported)")."""
    import socket

    hint = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}.get(family, socket.AF_UNSPEC)
    out: list[tuple[str, int | None]] = []
    for host, port in addresses:
        try:
            infos = socket.getaddrinfo(host, port, hint, socket.SOCK_STREAM, 0,
                                       socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ConfigError(f"bad addr or host: {host} ({exc.strerror})") from None
        except (UnicodeError, ValueError):
            raise ConfigError(f"bad addr or host: {host} (Name or service not known)") \
                from None
        for info in infos:
            numeric = (str(info[4][0]), port)
            if info[0] in (socket.AF_INET, socket.AF_INET6) and numeric not in out:
                out.append(numeric)
    return tuple(out)


def resolve_listeners(config: ServerConfig) -> ServerConfig:
    """``config`` with its ListenAddress hosts resolved for AddressFamily, as sshd does
    once the file is read (pysshd_main calls it; parse_config itself never looks up a
    name). Raises ConfigError."""
    return replace(config, listen_addresses=resolve_listen(config.listen_addresses,
                                                           config.address_family))
