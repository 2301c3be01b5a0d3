"""Property tests of pysshd's sshd_config parser: a ServerConfig or the project's own
error, never anything else."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from keytools.errors import SshError
from protocol.sshd_config import SUPPORTED, ServerConfig, parse_config

_WORDS = st.sampled_from([*SUPPORTED, "Match", "UsePAM", "Bogus", "=", '"', "none", "yes",
                          "no", "1m", "22", "[::1]:22", "%h/x", "DEBUG3", "-1", "\t"])


@given(st.lists(st.lists(_WORDS, max_size=4).map(" ".join), max_size=12).map("\n".join))
def test_config_soup(text: str) -> None:
    try:
        config = parse_config(text, "fuzz")
    except SshError:
        return
    assert isinstance(config, ServerConfig)
    config.listeners()


@given(st.text(max_size=300))
def test_arbitrary_config_text(text: str) -> None:
    with contextlib.suppress(SshError):
        assert isinstance(parse_config(text, "fuzz"), ServerConfig)


class _FakeTransport:
    """Just what UserAuthServer touches before a key is authorized."""

    session_id = b"\x01" * 32
    kex = None

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, payload: bytes) -> None:
        self.sent.append(payload)


_REQUEST_PARTS = st.lists(st.one_of(
    st.sampled_from([b"\x00\x00\x00\x0essh-connection", b"\x00\x00\x00\x04none",
                     b"\x00\x00\x00\x09publickey", b"\x00\x00\x00\x0bssh-ed25519", b"\x01",
                     b"\x00", b"\x00\x00\x00\x04root"]),
    st.binary(max_size=40)), max_size=8).map(b"".join)


@given(_REQUEST_PARTS)
def test_userauth_request_soup(body: bytes) -> None:
    import asyncio

    from keytools.wire import Reader
    from protocol.server_auth import UserAuthServer

    config = ServerConfig(authorized_keys_files=(), max_auth_tries=1000)
    server = UserAuthServer(_FakeTransport(), config, "127.0.0.1", 1, [])  # type: ignore[arg-type]
    with contextlib.suppress(SshError):
        result = asyncio.run(server._request(Reader(body)))
        assert result is None
