"""The in-memory key store: signing, constraints, lock/unlock and destination rules."""

from __future__ import annotations

import time

import pytest

from agent import messages as m
from agent.errors import AgentError
from agent.interface import Agent, Constraints, DestinationConstraint, Hop, HopKey
from agent.keyring import ConfirmRequest, KeyRing
from agent.restrict import HOSTBOUND_METHOD, SSH2_MSG_USERAUTH_REQUEST
from keytools.private import PrivateKey, generate
from keytools.public import PublicKey
from keytools.wire import Writer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {"ed25519": generate("ed25519"), "ecdsa": generate("ecdsa", 384),
            "rsa": generate("rsa", 2048)}


def test_add_list_sign_remove(keys: dict[str, PrivateKey]) -> None:
    ring = KeyRing()
    assert isinstance(ring, Agent)
    for name, key in keys.items():
        ring.add(key, name)
    assert [(i.key, i.comment) for i in ring.list()] == \
        [(k.public, n) for n, k in keys.items()]
    for key in keys.values():
        key.public.verify(b"data", ring.sign(key.public, b"data"))
    ring.remove(keys["ecdsa"].public)
    assert [i.comment for i in ring.list()] == ["ed25519", "rsa"]
    with pytest.raises(AgentError):
        ring.remove(keys["ecdsa"].public)
    with pytest.raises(AgentError):
        ring.sign(keys["ecdsa"].public, b"data")
    ring.remove_all()
    assert ring.list() == []


def test_rsa_flags_choose_the_hash(keys: dict[str, PrivateKey]) -> None:
    ring = KeyRing()
    ring.add(keys["rsa"], "rsa")
    pub = keys["rsa"].public
    for flags, algorithm in ((0, "ssh-rsa"), (m.SSH_AGENT_RSA_SHA2_256, "rsa-sha2-256"),
                             (m.SSH_AGENT_RSA_SHA2_512, "rsa-sha2-512")):
        sig = ring.sign(pub, b"data", flags)
        assert sig[4:4 + len(algorithm)] == algorithm.encode()
        pub.verify(b"data", sig)


def test_re_adding_replaces_in_place(keys: dict[str, PrivateKey]) -> None:
    ring = KeyRing()
    ring.add(keys["ed25519"], "first")
    ring.add(keys["rsa"], "rsa")
    ring.add(keys["ed25519"], "second", Constraints(confirm=True))
    assert [i.comment for i in ring.list()] == ["second", "rsa"]


def test_lifetime_expires(keys: dict[str, PrivateKey]) -> None:
    clock = Clock()
    ring = KeyRing(clock=clock)
    ring.add(keys["ed25519"], "short", Constraints(lifetime=10))
    ring.add(keys["ecdsa"], "forever")
    clock.now += 9.9
    assert len(ring.list()) == 2
    assert ring.reap() == pytest.approx(1010.0)
    clock.now += 0.2
    assert [i.comment for i in ring.list()] == ["forever"]
    with pytest.raises(AgentError):
        ring.sign(keys["ed25519"].public, b"x")


def test_default_lifetime(keys: dict[str, PrivateKey]) -> None:
    clock = Clock()
    ring = KeyRing(lifetime=5, clock=clock)
    ring.add(keys["ed25519"], "default")
    ring.add(keys["ecdsa"], "own", Constraints(lifetime=60))
    clock.now += 6
    assert [i.comment for i in ring.list()] == ["own"]


def test_lifetime_with_real_time(keys: dict[str, PrivateKey]) -> None:
    ring = KeyRing()
    ring.add(keys["ed25519"], "k", Constraints(lifetime=1))
    assert len(ring.list()) == 1
    time.sleep(1.1)
    assert ring.list() == []


def test_max_signatures(keys: dict[str, PrivateKey]) -> None:
    ring = KeyRing()
    ring.add(keys["ed25519"], "k", Constraints(max_signatures=2))
    pub = keys["ed25519"].public
    ring.sign(pub, b"1")
    ring.sign(pub, b"2")
    with pytest.raises(AgentError):
        ring.sign(pub, b"3")
    assert len(ring.list()) == 1


def test_confirm_callback(keys: dict[str, PrivateKey]) -> None:
    asked: list[ConfirmRequest] = []
    answer = [True]

    def confirm(request: ConfirmRequest) -> bool:
        asked.append(request)
        return answer[0]

    ring = KeyRing(confirm=confirm)
    ring.add(keys["ed25519"], "mykey", Constraints(confirm=True))
    ring.add(keys["ecdsa"], "free")
    ring.sign(keys["ed25519"].public, b"x")
    answer[0] = False
    with pytest.raises(AgentError):
        ring.sign(keys["ed25519"].public, b"x")
    ring.sign(keys["ecdsa"].public, b"x")  # not confirmed: never asks
    assert len(asked) == 2
    assert asked[0].prompt.startswith("Allow use of key mykey?\nKey fingerprint SHA256:")
    assert asked[0].identity.comment == "mykey"


def test_confirm_failure_denies(keys: dict[str, PrivateKey]) -> None:
    def broken(request: ConfirmRequest) -> bool:
        raise RuntimeError("no display")

    ring = KeyRing(confirm=broken)
    ring.add(keys["ed25519"], "k", Constraints(confirm=True))
    with pytest.raises(AgentError):
        ring.sign(keys["ed25519"].public, b"x")


def test_lock_unlock(keys: dict[str, PrivateKey]) -> None:
    ring = KeyRing(unlock_delay=0.01)
    ring.add(keys["ed25519"], "k")
    ring.lock(b"pass phrase")
    assert ring.locked
    assert ring.list() == []
    for action in (lambda: ring.sign(keys["ed25519"].public, b"x"),
                   lambda: ring.add(keys["ecdsa"], "e"),
                   lambda: ring.remove(keys["ed25519"].public),
                   ring.remove_all,
                   lambda: ring.lock(b"again"),
                   lambda: ring.extension("query", b"")):
        with pytest.raises(AgentError):
            action()
    start = time.monotonic()
    for _ in range(3):
        with pytest.raises(AgentError):
            ring.unlock(b"wrong")
    # the delay grows with each failure (0.01 + 0.02 + 0.03 s)
    assert time.monotonic() - start >= 0.06
    ring.unlock(b"pass phrase")
    assert not ring.locked
    assert len(ring.list()) == 1
    with pytest.raises(AgentError):
        ring.unlock(b"pass phrase")  # not locked any more


def test_empty_lock_passphrase_refused(keys: dict[str, PrivateKey]) -> None:
    ring = KeyRing(unlock_delay=10)
    with pytest.raises(AgentError):
        ring.lock(b"")  # as ssh-agent: "empty password not supported"
    assert not ring.locked
    ring.lock(b"x")
    start = time.monotonic()
    with pytest.raises(AgentError):
        ring.unlock(b"")  # refused at once, without the failure delay
    assert time.monotonic() - start < 5
    ring.unlock(b"x")


def test_query_extension() -> None:
    ring = KeyRing()
    reply = ring.extension("query", b"")
    assert set(m.decode_query_reply(reply)) == {"query", "session-bind@openssh.com"}
    with pytest.raises(AgentError):
        ring.extension("nonesuch@example.org", b"")


def test_security_keys_refused() -> None:
    from keytools.private import SkEd25519Private

    sk = SkEd25519Private(bytes(32), "ssh:", 1, b"handle")
    with pytest.raises(AgentError):
        KeyRing().add(sk, "sk")


# --- session-bind and destination constraints ---------------------------------------

def _bind(host: PrivateKey, sid: bytes, forwarding: bool = False) -> bytes:
    return m.SessionBind(host.public, sid, host.sign(sid), forwarding).encode()


def _userauth(sid: bytes, user: str, key: PublicKey, host: PublicKey | None,
              algorithm: str | None = None) -> bytes:
    w = Writer().string(sid).byte(SSH2_MSG_USERAUTH_REQUEST).string(user)
    w.string("ssh-connection").string(HOSTBOUND_METHOD if host else "publickey")
    w.boolean(True).string(algorithm or key.key_type).string(key.blob())
    if host is not None:
        w.string(host.blob())
    return w.getvalue()


@pytest.fixture(scope="module")
def hosts() -> dict[str, PrivateKey]:
    return {name: generate("ed25519") for name in ("a", "b", "jump")}


def _ring_with_constrained(key: PrivateKey, hosts: dict[str, PrivateKey]) -> KeyRing:
    ring = KeyRing()
    allowed = (
        DestinationConstraint(Hop(), Hop("", "a", (HopKey(hosts["a"].public),))),
        DestinationConstraint(Hop(), Hop("", "jump", (HopKey(hosts["jump"].public),))),
        DestinationConstraint(Hop("", "jump", (HopKey(hosts["jump"].public),)),
                              Hop("admin", "b", (HopKey(hosts["b"].public),))),
    )
    ring.add(key, "restricted", Constraints(destinations=allowed))
    return ring


def test_session_bind_checks_signature(hosts: dict[str, PrivateKey]) -> None:
    conn = KeyRing().connection()
    sid = b"s" * 32
    bad = m.SessionBind(hosts["a"].public, sid, hosts["b"].sign(sid), False).encode()
    with pytest.raises(AgentError):
        conn.extension(m.EXT_SESSION_BIND, bad)
    conn.extension(m.EXT_SESSION_BIND, _bind(hosts["a"], sid))
    # bound for authentication: no further binding on this connection
    with pytest.raises(AgentError):
        conn.extension(m.EXT_SESSION_BIND, _bind(hosts["b"], b"t" * 32))
    with pytest.raises(AgentError):
        conn.extension(m.EXT_SESSION_BIND, b"garbage")


def test_destination_allowed_host(keys: dict[str, PrivateKey],
                                  hosts: dict[str, PrivateKey]) -> None:
    key = keys["ed25519"]
    ring = _ring_with_constrained(key, hosts)
    # locally (unbound connection) the key is listed but cannot sign
    local = ring.connection()
    assert len(local.list()) == 1
    with pytest.raises(AgentError):
        local.sign(key.public, b"anything")
    conn = ring.connection()
    sid = b"1" * 32
    conn.extension(m.EXT_SESSION_BIND, _bind(hosts["a"], sid))
    assert [i.comment for i in conn.list()] == ["restricted"]
    data = _userauth(sid, "root", key.public, hosts["a"].public)
    key.public.verify(data, conn.sign(key.public, data))
    # the plain publickey method (no host key in the request) is accepted on a first hop
    plain = _userauth(sid, "root", key.public, None)
    conn.sign(key.public, plain)
    for bad in (_userauth(b"2" * 32, "root", key.public, hosts["a"].public),  # other session
                _userauth(sid, "root", key.public, hosts["b"].public),  # other host key
                b"not a userauth request"):
        with pytest.raises(AgentError):
            conn.sign(key.public, bad)


def test_destination_refused_host(keys: dict[str, PrivateKey],
                                  hosts: dict[str, PrivateKey]) -> None:
    key = keys["ed25519"]
    ring = _ring_with_constrained(key, hosts)
    conn = ring.connection()
    sid = b"3" * 32
    conn.extension(m.EXT_SESSION_BIND, _bind(hosts["b"], sid))  # b only via jump
    assert conn.list() == []
    with pytest.raises(AgentError):
        conn.sign(key.public, _userauth(sid, "admin", key.public, hosts["b"].public))
    with pytest.raises(AgentError):
        conn.remove(key.public)  # invisible keys cannot be removed either
    assert len(ring.list()) == 1


def test_destination_forwarding_chain(keys: dict[str, PrivateKey],
                                      hosts: dict[str, PrivateKey]) -> None:
    key = keys["ed25519"]
    ring = _ring_with_constrained(key, hosts)
    conn = ring.connection()
    conn.extension(m.EXT_SESSION_BIND, _bind(hosts["jump"], b"j" * 32, forwarding=True))
    # forwarded to jump: visible because it may be used beyond it (jump > b)
    assert len(conn.list()) == 1
    sid = b"b" * 32
    conn.extension(m.EXT_SESSION_BIND, _bind(hosts["b"], sid))
    ok = _userauth(sid, "admin", key.public, hosts["b"].public)
    conn.sign(key.public, ok)
    with pytest.raises(AgentError):  # the hop allows user "admin" only
        conn.sign(key.public, _userauth(sid, "root", key.public, hosts["b"].public))
    with pytest.raises(AgentError):  # forwarded hops need the host key in the request
        conn.sign(key.public, _userauth(sid, "admin", key.public, None))


def test_forwarded_to_a_dead_end_hides_key(keys: dict[str, PrivateKey],
                                           hosts: dict[str, PrivateKey]) -> None:
    ring = _ring_with_constrained(keys["ed25519"], hosts)
    conn = ring.connection()
    conn.extension(m.EXT_SESSION_BIND, _bind(hosts["a"], b"a" * 32, forwarding=True))
    assert conn.list() == []  # usable at "a" but not from it: not shown there


def test_unconstrained_keys_unaffected_by_binding(keys: dict[str, PrivateKey],
                                                  hosts: dict[str, PrivateKey]) -> None:
    ring = KeyRing()
    ring.add(keys["ecdsa"], "free")
    conn = ring.connection()
    conn.extension(m.EXT_SESSION_BIND, _bind(hosts["b"], b"z" * 32))
    assert len(conn.list()) == 1
    conn.sign(keys["ecdsa"].public, b"anything")


def test_certificate_host_hop(keys: dict[str, PrivateKey], hosts: dict[str, PrivateKey]) -> None:
    """A hop given as a host CA matches host certificates it signed for that name."""
    from agent.restrict import match_key_hop
    from keytools.certificate import HOST_CERT, Certificate

    ca = generate("ed25519")
    host = hosts["a"].public
    unsigned = Certificate("ssh-ed25519-cert-v01@openssh.com", b"n" * 32, host, 1, HOST_CERT,
                           "id", ("a.example",), 0, 2**64 - 1, (), (), b"", ca.public, b"")
    signed = unsigned.to_be_signed()
    cert = Certificate(unsigned.cert_type_name, unsigned.nonce, host, 1, HOST_CERT, "id",
                       ("a.example",), 0, 2**64 - 1, (), (), b"", ca.public, ca.sign(signed),
                       signed)
    assert match_key_hop(cert, Hop("", "a.example", (HopKey(ca.public, is_ca=True),)))
    assert not match_key_hop(cert, Hop("", "b.example", (HopKey(ca.public, is_ca=True),)))
    assert not match_key_hop(cert, Hop("", "a.example", (HopKey(ca.public),)))
    assert match_key_hop(host, Hop("", "a", (HopKey(host),)))
    assert not match_key_hop(host, Hop("", "a", (HopKey(host, is_ca=True),)))
