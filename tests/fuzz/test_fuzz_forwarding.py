"""Property tests of the forwarding parsers: -L/-R/-D specs, SOCKS requests and the
sshd_config forwarding keywords give a value or the project's own error, nothing else."""

from __future__ import annotations

import asyncio
import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from keytools.errors import SshError
from protocol.forward_policy import POLICY_KEYWORDS, apply_policy_keyword
from protocol.forward_spec import BadForward, parse_forward, parse_remote_forward
from protocol.socks import SocksError, negotiate
from tests.fuzz.mutations import mutation

_pieces = st.sampled_from(["1", "22", "\u00b2", "\u0663", "0", "65535", "65536", ":", "[",
                           "]", "::1", "/",
                           "/tmp/s", "\\", "h", "*", "localhost", "${HOME}", "${NOPE_X}",
                           " ", "-1", "socks"])
_specs = st.one_of(st.text(max_size=60), st.lists(_pieces, max_size=10).map("".join))


@given(_specs, st.booleans(), st.booleans())
def test_parse_forward_total(spec: str, dynamic: bool, remote: bool) -> None:
    try:
        forward = parse_forward(spec, dynamic=dynamic, remote=remote)
    except BadForward:
        return
    assert forward.listen_path is not None or 0 <= forward.listen_port <= 65535
    if not dynamic:
        assert forward.connect_path is not None or 0 < forward.connect_port <= 65535
    with contextlib.suppress(BadForward):
        parse_remote_forward(spec)


class _Sink:
    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        return None


_SOCKS = [b"\x05\x01\x00\x05\x01\x00\x03\x04host\x00\x50",
          b"\x04\x01\x00\x16\x00\x00\x00\x01id\x00name\x00",
          b"\x05\x01\x00\x05\x01\x00\x04" + bytes(16) + b"\x00\x16"]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=64), st.sampled_from(_SOCKS).flatmap(mutation)))
def test_socks_negotiate_total(data: bytes) -> None:
    async def main() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        try:
            request = await negotiate(reader, _Sink())  # type: ignore[arg-type]
        except SocksError:
            return
        assert 0 <= request.port <= 65535

    asyncio.run(main())


@given(st.sampled_from(sorted(POLICY_KEYWORDS)), st.lists(st.text(max_size=20), max_size=4))
def test_policy_keywords_total(key: str, words: list[str]) -> None:
    with contextlib.suppress(SshError):
        apply_policy_keyword(key, words, SshError)
