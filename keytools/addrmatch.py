"""Address lists as OpenSSH's addrmatch.c reads them (certificate ``source-address``).

``addr_match_cidr_list`` takes ``addr[/masklen],...`` with no wildcards or negation.
Addresses are parsed as getaddrinfo(AI_NUMERICHOST) does: IPv4 in any inet_aton form
(``10.1``, ``012.0.0.1``, ``0x0a.1``) and IPv6 text; a network must have its host bits
clear. Diagnostics use OpenSSH's words and go to ``log`` (ssh-keygen prints them before
"Invalid source-address list"). Pure parsing: no sockets, no name lookups.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

#: INET6_ADDRSTRLEN + 3 (room for "/128")
_MAX_ENTRY = 46 + 3
_VALID_CIDR_CHARS = frozenset("0123456789abcdefABCDEF.:/")

Log = Callable[[str], None]


@dataclass(frozen=True)
class XAddr:
    """An address as OpenSSH's struct xaddr: family bits (32 or 128), value, scope."""

    width: int
    value: int
    scope: str = ""


def _inet_aton_part(text: str) -> int | None:
    if not text or not "0" <= text[0] <= "9":
        return None
    base, digits = 10, text
    if text[0] == "0":
        if text[1:2] in ("x", "X"):
            base, digits = 16, text[2:]
        else:
            base, digits = 8, text[1:]
    if not digits:
        return 0
    allowed = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}[base]
    if any(c not in allowed for c in digits):
        return None
    return int(digits, base)


def _inet_aton(text: str) -> int | None:
    """glibc's inet_aton_exact(): one to four parts, the last filling what is left."""
    parts = text.split(".")
    if len(parts) > 4:
        return None
    values = [_inet_aton_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    if all(p[:2] in ("0x", "0X") and len(p) == 2 for p in parts):
        return None  # glibc wants at least one digit somewhere
    nums = [v for v in values if v is not None]
    head, last = nums[:-1], nums[-1]
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    value = 0
    for v in head:
        value = (value << 8) | v
    return (value << (8 * (4 - len(head)))) | last


def addr_pton(text: str) -> XAddr | None:
    """A numeric IPv4 or IPv6 address (OpenSSH's addr_pton), None if it is not one."""
    v4 = _inet_aton(text) if text.isascii() else None
    if v4 is not None:
        return XAddr(32, v4)
    try:
        v6 = ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return XAddr(128, int(v6), v6.scope_id or "")


def _pton_cidr(text: str) -> tuple[XAddr, int] | int:
    """addr_pton_cidr(): (network, masklen), or -1 (unparsable) / -2 (bad mask)."""
    if len(text.encode("utf-8", "surrogateescape")) >= 64:
        return -1
    addr_text, slash, mask_text = text.partition("/")
    masklen = -1
    if slash:
        digits = len(mask_text) - len(mask_text.lstrip("0123456789"))
        if not digits or digits != len(mask_text) or not mask_text.isascii():
            return -1
        masklen = int(mask_text)
        if masklen > 128:
            return -1
    addr = addr_pton(addr_text)
    if addr is None:
        return -1
    if masklen < 0:
        masklen = addr.width
    if masklen > addr.width or addr.value & ((1 << (addr.width - masklen)) - 1):
        return -2
    return addr, masklen


def _netmatch(host: XAddr, net: XAddr, masklen: int) -> bool:
    if host.width != net.width:
        return False
    shift = host.width - masklen
    return (host.value >> shift) == (net.value >> shift) and host.scope == net.scope


def addr_match_cidr_list(addr: str | None, entries: str, log: Log | None = None) -> int:
    """1 if ``addr`` is in the list, 0 if not (or ``addr`` is not an address), -1 if the
    list is malformed. With ``addr`` None only the list's syntax is checked (0 or -1).

    Follows OpenSSH exactly, including its quirks: an entry with stray characters marks
    the list bad yet later entries may still match, and the "empty entry" message
    quotes the list only up to the first comma.
    """
    say = log or (lambda _message: None)
    host = None
    if addr is not None:
        host = addr_pton(addr)
        if host is None:
            return 0
    result = 0
    items = entries.split(",")
    for cp in items:
        if not cp:
            say(f'addr_match_cidr_list: empty entry in list "{items[0][:100]}"')
            return -1
        if len(cp.encode("utf-8", "surrogateescape")) > _MAX_ENTRY:
            say(f'addr_match_cidr_list: list entry "{cp[:100]}" too long')
            return -1
        if not set(cp) <= _VALID_CIDR_CHARS:
            say(f'addr_match_cidr_list: list entry "{cp[:100]}" contains invalid characters')
            result = -1
        parsed = _pton_cidr(cp)
        if parsed == -1:
            say(f'Invalid network entry "{cp[:100]}"')
            return -1
        if parsed == -2:
            say(f'Inconsistent mask length for network "{cp[:100]}"')
            return -1
        if host is not None and isinstance(parsed, tuple) and _netmatch(host, *parsed):
            result = 1
    return result
