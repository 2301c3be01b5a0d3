"""Agent protocol messages: every message and constraint survives a round trip, and
malformed input raises the project's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import messages as m
from agent.certkey import CertifiedPrivate
from agent.interface import Constraints, DestinationConstraint, Hop, HopKey, Identity
from keytools.certificate import Certificate
from keytools.errors import FeatureUnsupported, InvalidFormat, MessageIncomplete, SshError
from keytools.keyfile import load_private, load_public
from keytools.private import Ed25519Private, PrivateKey, generate
from keytools.public import PublicKey
from keytools.wire import Writer
from tests.helpers import private_copy


@pytest.fixture(scope="module")
def ed_key() -> PrivateKey:
    return generate("ed25519")


def _dest(host_key: PublicKey) -> DestinationConstraint:
    return DestinationConstraint(Hop(), Hop("root", "example.org", (HopKey(host_key),)))


def test_request_round_trips(ed_key: PrivateKey) -> None:
    host = generate("ed25519").public
    hop_from = Hop("", "jump", (HopKey(host, is_ca=True),))
    requests: list[m.Request] = [
        m.RequestIdentities(),
        m.SignRequest(ed_key.public.blob(), b"data", m.SSH_AGENT_RSA_SHA2_256),
        m.AddIdentity(ed_key, "comment"),
        m.AddIdentity(ed_key, "c", Constraints(lifetime=60, confirm=True, max_signatures=3,
                                               destinations=(_dest(host),
                                                             DestinationConstraint(
                                                                 hop_from, _dest(host).to_hop)))),
        m.RemoveIdentity(ed_key.public.blob()),
        m.RemoveAllIdentities(),
        m.AddSmartcardKey("/usr/lib/p11.so", "1234"),
        m.AddSmartcardKey("/usr/lib/p11.so", "1234", Constraints(lifetime=5, confirm=True)),
        m.RemoveSmartcardKey("/usr/lib/p11.so", "1234"),
        m.Lock(b"secret"),
        m.Unlock(b"secret"),
        m.Extension("query"),
        m.Extension("session-bind@openssh.com", b"\0\0\0\1x"),
    ]
    for request in requests:
        decoded = m.decode_request(request.encode())
        assert decoded == request
        assert decoded.encode() == request.encode()


def test_constrained_numbers(ed_key: PrivateKey) -> None:
    assert m.AddIdentity(ed_key, "c").encode()[0] == m.ADD_IDENTITY
    assert m.AddIdentity(ed_key, "c", Constraints(confirm=True)).encode()[0] == \
        m.ADD_ID_CONSTRAINED
    assert m.AddSmartcardKey("p", "").encode()[0] == m.ADD_SMARTCARD_KEY
    assert m.AddSmartcardKey("p", "", Constraints(lifetime=1)).encode()[0] == \
        m.ADD_SMARTCARD_KEY_CONSTRAINED


def test_constraint_bytes_as_ssh_add_sends_them() -> None:
    # lifetime 3600 then confirm, each a byte tag (PROTOCOL.agent.2016 / ssh-add's order)
    raw = m.encode_constraints(Constraints(lifetime=3600, confirm=True))
    assert raw == bytes((1,)) + (3600).to_bytes(4, "big") + bytes((2,))


def test_associated_certs_only_for_smartcards(tmp_path: Path) -> None:
    cert, _ = load_public(str(private_copy("sshkey/ed25519_1-cert.pub", tmp_path)))
    c = Constraints(associated_certs=(cert,), certs_only=True)
    msg = m.AddSmartcardKey("/usr/lib/p.so", "", c)
    assert m.decode_request(msg.encode()) == msg
    key = generate("ed25519")
    body = (Writer().byte(m.ADD_ID_CONSTRAINED).raw(key.private_blob()).string("c")
            .raw(m.encode_constraints(c)).getvalue())
    with pytest.raises(FeatureUnsupported):
        m.decode_request(body)


def test_reply_round_trips(ed_key: PrivateKey) -> None:
    replies: list[m.Response] = [
        m.Success(), m.Failure(), m.ExtensionFailure(),
        m.IdentitiesAnswer((Identity(ed_key.public, "one"), Identity(ed_key.public, ""))),
        m.SignResponse(ed_key.sign(b"x")),
        m.ExtensionResponse(m.encode_query_reply(["query", "session-bind@openssh.com"])),
    ]
    for reply in replies:
        assert m.decode_response(reply.encode()) == reply
    query = replies[-1]
    assert isinstance(query, m.ExtensionResponse)
    contents = query.contents
    assert m.decode_query_reply(contents) == ["query", "session-bind@openssh.com"]


def test_identities_skip_unknown_key_types(ed_key: PrivateKey) -> None:
    w = Writer().byte(m.IDENTITIES_ANSWER).uint32(2)
    w.string(Writer().string("ssh-xmss@openssh.com").string(b"junk").getvalue()).string("x")
    w.string(ed_key.public.blob()).string("kept")
    answer = m.decode_response(w.getvalue())
    assert answer == m.IdentitiesAnswer((Identity(ed_key.public, "kept"),))


def test_certified_key_round_trip(tmp_path: Path) -> None:
    for name in ("ed25519_1", "ecdsa_1", "rsa_1"):
        key, _ = load_private(str(private_copy(f"sshkey/{name}", tmp_path)), None)
        cert, _ = load_public(str(private_copy(f"sshkey/{name}-cert.pub", tmp_path)))
        assert isinstance(cert, Certificate)
        certified = CertifiedPrivate(key, cert)
        msg = m.AddIdentity(certified, name)
        decoded = m.decode_request(msg.encode())
        assert isinstance(decoded, m.AddIdentity)
        assert decoded.key.public == cert
        assert isinstance(decoded.key, CertifiedPrivate)
        assert decoded.key.key.private_blob() == key.private_blob()
        sig = decoded.key.sign(b"hello")
        cert.verify(b"hello", sig)
        # the certificate part carries only what the certificate lacks
        assert msg.encode() != m.AddIdentity(key, name).encode()


def test_certified_key_must_match(tmp_path: Path) -> None:
    cert, _ = load_public(str(private_copy("sshkey/ed25519_1-cert.pub", tmp_path)))
    assert isinstance(cert, Certificate)
    other = generate("ed25519")
    assert isinstance(other, Ed25519Private)
    with pytest.raises(SshError):
        CertifiedPrivate(other, cert)
    # A wire message whose private half does not belong to the certificate.
    w = Writer().byte(m.ADD_IDENTITY).string(cert.key_type).string(cert.blob())
    w.string(other.public_key).string(other.seed + other.public_key).string("c")
    with pytest.raises(InvalidFormat):
        m.decode_request(w.getvalue())


@pytest.mark.parametrize("body", [
    b"",
    bytes((m.SIGN_REQUEST,)),
    bytes((m.SIGN_REQUEST,)) + b"\0\0\0\5abc",
    bytes((m.ADD_IDENTITY,)) + Writer().string("ssh-ed25519").string(b"x").getvalue(),
    bytes((m.ADD_IDENTITY,)) + Writer().string("no-such-type").getvalue(),
    bytes((m.LOCK,)) + b"\0\0\0\1ab",
    bytes((m.REQUEST_IDENTITIES,)) + b"trailing",
    bytes((m.EXTENSION,)) + b"\0\0\0\2q",
])
def test_malformed_requests(body: bytes) -> None:
    with pytest.raises(SshError):
        m.decode_request(body)


def test_constraint_errors(ed_key: PrivateKey) -> None:
    base = Writer().byte(m.ADD_ID_CONSTRAINED).raw(ed_key.private_blob()).string("c").getvalue()
    with pytest.raises(FeatureUnsupported):  # unknown constraint type
        m.decode_request(base + bytes((9,)))
    with pytest.raises(InvalidFormat):  # confirm twice
        m.decode_request(base + bytes((2, 2)))
    with pytest.raises(MessageIncomplete):  # lifetime without its value
        m.decode_request(base + bytes((1, 0)))
    with pytest.raises(FeatureUnsupported):  # unknown extension constraint
        m.decode_request(base + bytes((255,)) + Writer().string("x@example.org").getvalue())
    # a "to" hop without host keys is refused, as ssh-agent does
    host = generate("ed25519").public
    incomplete = DestinationConstraint(Hop(), Hop("", "h", ()))
    raw = m.encode_constraints(Constraints(destinations=(incomplete,)))
    with pytest.raises(InvalidFormat):
        m.decode_request(base + raw)
    bad_from = DestinationConstraint(Hop("user", "", ()), Hop("", "h", (HopKey(host),)))
    with pytest.raises(InvalidFormat):
        m.decode_request(base + m.encode_constraints(Constraints(destinations=(bad_from,))))


def test_unknown_message_numbers() -> None:
    assert m.decode_request(b"\x63abc") == m.UnknownMessage(0x63, b"abc")
    assert m.decode_response(b"\x63") == m.UnknownMessage(0x63, b"")


def test_session_bind_round_trip() -> None:
    host = generate("ed25519")
    sid = bytes(range(32))
    bind = m.SessionBind(host.public, sid, host.sign(sid), True)
    assert m.SessionBind.decode(bind.encode()) == bind
    with pytest.raises(SshError):
        m.SessionBind.decode(bind.encode() + b"x")


def test_frame_limits() -> None:
    assert m.frame(b"\x0b") == b"\0\0\0\1\x0b"
    with pytest.raises(SshError):
        m.frame(bytes(m.MAX_MESSAGE + 1))
