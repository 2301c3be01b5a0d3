"""Property tests of the agent protocol decoders: arbitrary or mutated messages give a
message or an SshError, never another exception; whatever decodes re-encodes."""

from __future__ import annotations

import contextlib
import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from agent import messages as m
from agent.daemon import handle_message
from agent.interface import Constraints, DestinationConstraint, Hop, HopKey, Identity
from agent.keyring import KeyRing
from keytools.errors import SshError
from keytools.private import PrivateKey, generate
from tests.fuzz.mutations import mutated_from


@functools.cache
def _keys() -> tuple[PrivateKey, ...]:
    return (generate("ed25519"), generate("ecdsa", 256))


@functools.cache
def _samples() -> tuple[bytes, ...]:
    ed, ec = _keys()
    host = generate("ed25519")
    dest = DestinationConstraint(Hop("", "jump", (HopKey(host.public, True),)),
                                 Hop("u", "h", (HopKey(ec.public),)))
    sid = b"s" * 32
    messages: list[m.Request | m.Response] = [
        m.RequestIdentities(),
        m.SignRequest(ed.public.blob(), b"data", 2),
        m.AddIdentity(ed, "c"),
        m.AddIdentity(ec, "c", Constraints(lifetime=9, confirm=True, max_signatures=4,
                                           destinations=(dest,))),
        m.RemoveIdentity(ec.public.blob()),
        m.AddSmartcardKey("/usr/lib/x.so", "1", Constraints(lifetime=1)),
        m.RemoveSmartcardKey("/usr/lib/x.so", "1"),
        m.Lock(b"pw"), m.Unlock(b"pw"),
        m.Extension(m.EXT_SESSION_BIND,
                    m.SessionBind(host.public, sid, host.sign(sid), False).encode()),
        m.IdentitiesAnswer((Identity(ed.public, "a"), Identity(ec.public, "b"))),
        m.SignResponse(ed.sign(b"x")),
        m.ExtensionResponse(m.encode_query_reply(["query"])),
    ]
    return tuple(msg.encode() for msg in messages)


def mutated() -> st.SearchStrategy[bytes]:
    return mutated_from(_samples())


inputs = st.one_of(st.binary(max_size=300), mutated())


@given(inputs)
@settings(max_examples=400)
def test_decode_request(data: bytes) -> None:
    try:
        msg = m.decode_request(data)
    except SshError:
        return
    assert m.decode_request(msg.encode()) == msg


@given(inputs)
@settings(max_examples=300)
def test_decode_response(data: bytes) -> None:
    try:
        msg = m.decode_response(data)
    except SshError:
        return
    assert isinstance(msg.encode(), bytes)


@given(inputs)
@settings(max_examples=200)
def test_session_bind_and_query(data: bytes) -> None:
    for decode in (m.SessionBind.decode, m.decode_query_reply):
        with contextlib.suppress(SshError):
            decode(data)


@given(inputs)
@settings(max_examples=300)
def test_served_by_a_keyring(data: bytes) -> None:
    """The daemon's request handler answers anything with a valid reply."""
    reply = handle_message(KeyRing(unlock_delay=0).connection(), data)
    assert m.decode_response(reply) is not None
