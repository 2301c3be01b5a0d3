"""SSH message numbers (RFC 4250 section 4.1 and OpenSSH's PROTOCOL), named once."""

from __future__ import annotations

DISCONNECT = 1
IGNORE = 2
UNIMPLEMENTED = 3
DEBUG = 4
SERVICE_REQUEST = 5
SERVICE_ACCEPT = 6
EXT_INFO = 7

KEXINIT = 20
NEWKEYS = 21
# Key exchange method messages share 30..49; their meaning depends on the method.
KEX_ECDH_INIT = 30
KEX_ECDH_REPLY = 31
KEX_DH_GEX_GROUP = 31
KEX_DH_GEX_INIT = 32
KEX_DH_GEX_REPLY = 33
KEX_DH_GEX_REQUEST = 34

USERAUTH_REQUEST = 50
USERAUTH_FAILURE = 51
USERAUTH_SUCCESS = 52
USERAUTH_BANNER = 53
# 60 is PK_OK, PASSWD_CHANGEREQ or INFO_REQUEST depending on the method in progress.
USERAUTH_PK_OK = 60
USERAUTH_PASSWD_CHANGEREQ = 60
USERAUTH_INFO_REQUEST = 60
USERAUTH_INFO_RESPONSE = 61

GLOBAL_REQUEST = 80
REQUEST_SUCCESS = 81
REQUEST_FAILURE = 82
CHANNEL_OPEN = 90
CHANNEL_OPEN_CONFIRMATION = 91
CHANNEL_OPEN_FAILURE = 92
CHANNEL_WINDOW_ADJUST = 93
CHANNEL_DATA = 94
CHANNEL_EXTENDED_DATA = 95
CHANNEL_EOF = 96
CHANNEL_CLOSE = 97
CHANNEL_REQUEST = 98
CHANNEL_SUCCESS = 99
CHANNEL_FAILURE = 100

PING = 192
PONG = 193


def is_kex_message(msg: int) -> bool:
    """Key exchange messages: the only ones besides 1..4 a peer may send between its
    KEXINIT and its NEWKEYS (RFC 4253 section 7.1)."""
    return 20 <= msg <= 49


def is_transport_generic(msg: int) -> bool:
    """DISCONNECT, IGNORE, UNIMPLEMENTED and DEBUG: allowed at any time (but see strict kex)."""
    return 1 <= msg <= 4
