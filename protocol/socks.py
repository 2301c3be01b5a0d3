"""The SOCKS server side of dynamic forwarding (-D, and -R with only a port): SOCKS4,
SOCKS4A and SOCKS5 CONNECT without authentication, as ssh's channels.c accepts them.

``negotiate`` reads a request from the accepted stream and returns the target; the
caller opens the channel, then answers with ``reply``. Every length comes from the
request, so each read is bounded (a hostname is at most 255 bytes, a SOCKS4 user id or
SOCKS4A name at most 1 KiB, as ssh limits them).
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

from keytools.errors import SshError

MAX_NAME = 1024
SOCKS4_GRANTED, SOCKS4_REJECTED = 90, 91
SOCKS5_OK, SOCKS5_FAILURE, SOCKS5_NOT_ALLOWED, SOCKS5_REFUSED = 0, 1, 2, 5
SOCKS5_BAD_COMMAND, SOCKS5_BAD_ADDRESS = 7, 8


class SocksError(SshError):
    """A malformed or unsupported SOCKS request: the connection is dropped."""


@dataclass(frozen=True)
class SocksRequest:
    version: int
    host: str
    port: int


async def _until_nul(reader: asyncio.StreamReader) -> bytes:
    data = bytearray()
    while True:
        byte = await reader.readexactly(1)
        if byte == b"\0":
            return bytes(data)
        data += byte
        if len(data) > MAX_NAME:
            raise SocksError("socks4: name too long")


async def negotiate(reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> SocksRequest:
    """Read one CONNECT request (answering SOCKS5's method negotiation on the way)."""
    try:
        version = (await reader.readexactly(1))[0]
        if version == 4:
            return await _socks4(reader)
        if version == 5:
            return await _socks5(reader, writer)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise SocksError("socks: connection closed during negotiation") from exc
    raise SocksError(f"channel: decode socks packet: unknown socks version {version}")


async def _socks4(reader: asyncio.StreamReader) -> SocksRequest:
    head = await reader.readexactly(7)
    if head[0] != 1:
        raise SocksError(f"socks4: unsupported command {head[0]}")
    port = int.from_bytes(head[1:3], "big")
    address = head[3:7]
    await _until_nul(reader)  # the user id, ignored as ssh ignores it
    if address[:3] == b"\0\0\0" and address[3] != 0:  # SOCKS4A: the name follows
        host = (await _until_nul(reader)).decode("ascii", "replace")
        return SocksRequest(4, host, port)
    return SocksRequest(4, str(ipaddress.IPv4Address(address)), port)


async def _socks5(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> SocksRequest:
    count = (await reader.readexactly(1))[0]
    methods = await reader.readexactly(count)
    if 0 not in methods:
        writer.write(b"\x05\xff")
        raise SocksError("socks5: no acceptable authentication method")
    writer.write(b"\x05\x00")
    await writer.drain()
    version, command, _reserved, atyp = await reader.readexactly(4)
    if version != 5:
        raise SocksError("socks5: bad version in request")
    if atyp == 1:
        host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
    elif atyp == 3:
        length = (await reader.readexactly(1))[0]
        host = (await reader.readexactly(length)).decode("ascii", "replace")
    elif atyp == 4:
        host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
    else:
        _reply5(writer, SOCKS5_BAD_ADDRESS)
        raise SocksError(f"socks5: bad address type {atyp}")
    port = int.from_bytes(await reader.readexactly(2), "big")
    if command != 1:
        _reply5(writer, SOCKS5_BAD_COMMAND)
        raise SocksError(f"socks5: unsupported command {command}")
    return SocksRequest(5, host, port)


def _reply5(writer: asyncio.StreamWriter, code: int) -> None:
    writer.write(bytes((5, code, 0, 1, 0, 0, 0, 0, 0, 0)))


def reply(writer: asyncio.StreamWriter, request: SocksRequest, ok: bool,
          reason: int = SOCKS5_FAILURE) -> None:
    """Answer the request: granted/succeeded, or refused (SOCKS5 with ``reason``)."""
    if request.version == 4:
        code = SOCKS4_GRANTED if ok else SOCKS4_REJECTED
        writer.write(bytes((0, code, 0, 0, 0, 0, 0, 0)))
    else:
        _reply5(writer, SOCKS5_OK if ok else reason)


__all__ = ["SocksError", "SocksRequest", "negotiate", "reply"]
