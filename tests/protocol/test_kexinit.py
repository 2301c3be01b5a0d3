"""KEXINIT encoding and the RFC 4253 7.1 negotiation rules, as tables."""

from __future__ import annotations

import pytest

from keytools.errors import (
    MessageIncomplete,
    NegotiationFailed,
    NoCipherMatch,
    NoCompressMatch,
    NoHostKeyMatch,
    NoKexMatch,
    NoMacMatch,
)
from protocol.kex.hostkey import algorithms_for_key, key_type, signature_algorithm
from protocol.kex.kexinit import (
    STRICT_CLIENT,
    Algorithms,
    KexInit,
    Preferences,
    guess_was_right,
    negotiate,
)


def offer(kex: str = "curve25519-sha256", host_key: str = "ssh-ed25519",
          ciphers: str = "aes128-ctr", macs: str = "hmac-sha2-256", comp: str = "none",
          ciphers_s2c: str | None = None, macs_s2c: str | None = None) -> KexInit:
    def names(text: str) -> tuple[str, ...]:
        return tuple(text.split(",")) if text else ()

    return KexInit(bytes(16), names(kex), names(host_key), names(ciphers),
                   names(ciphers if ciphers_s2c is None else ciphers_s2c), names(macs),
                   names(macs if macs_s2c is None else macs_s2c), names(comp), names(comp))


# (client offer, server offer, expected kex, host key, cipher c2s, cipher s2c, mac c2s, mac s2c)
TABLE = [
    # the client's order wins, whatever the server prefers
    (offer(kex="curve25519-sha256,ecdh-sha2-nistp256"),
     offer(kex="ecdh-sha2-nistp256,curve25519-sha256"),
     "curve25519-sha256", "ssh-ed25519", "aes128-ctr", "aes128-ctr", "hmac-sha2-256",
     "hmac-sha2-256"),
    # first client entry the server also has, even if it is last for the server
    (offer(host_key="rsa-sha2-512,rsa-sha2-256,ssh-ed25519"),
     offer(host_key="ssh-ed25519,rsa-sha2-256"),
     "curve25519-sha256", "rsa-sha2-256", "aes128-ctr", "aes128-ctr", "hmac-sha2-256",
     "hmac-sha2-256"),
    # each direction negotiates on its own
    (offer(ciphers="aes256-ctr,aes128-ctr", ciphers_s2c="aes128-ctr,aes256-ctr"),
     offer(ciphers="aes128-ctr,aes256-ctr"),
     "curve25519-sha256", "ssh-ed25519", "aes256-ctr", "aes128-ctr", "hmac-sha2-256",
     "hmac-sha2-256"),
    # an AEAD cipher needs no MAC, even when no MAC is in common
    (offer(ciphers="chacha20-poly1305@openssh.com", macs="hmac-sha1"),
     offer(ciphers="aes128-ctr,chacha20-poly1305@openssh.com", macs="hmac-sha2-512"),
     "curve25519-sha256", "ssh-ed25519", "chacha20-poly1305@openssh.com",
     "chacha20-poly1305@openssh.com", None, None),
    # AEAD one way, CTR+MAC the other
    (offer(ciphers="aes128-gcm@openssh.com", ciphers_s2c="aes192-ctr",
           macs="hmac-sha2-512-etm@openssh.com,hmac-sha1"),
     offer(ciphers="aes192-ctr,aes128-gcm@openssh.com", macs="hmac-sha1"),
     "curve25519-sha256", "ssh-ed25519", "aes128-gcm@openssh.com", "aes192-ctr", None,
     "hmac-sha1"),
    # markers in the kex list are never picked, even when both send the same one
    (offer(kex=f"ext-info-c,{STRICT_CLIENT},ecdh-sha2-nistp384"),
     offer(kex=f"ext-info-c,{STRICT_CLIENT},ecdh-sha2-nistp384"),
     "ecdh-sha2-nistp384", "ssh-ed25519", "aes128-ctr", "aes128-ctr", "hmac-sha2-256",
     "hmac-sha2-256"),
]


@pytest.mark.parametrize("row", TABLE)
def test_negotiation_table(row: tuple[object, ...]) -> None:
    client, server, *expected = row
    assert isinstance(client, KexInit) and isinstance(server, KexInit)
    got = negotiate(client, server, we_are_client=True)
    assert got == Algorithms(expected[0], expected[1], expected[2], expected[3],  # type: ignore[arg-type]
                             expected[4], expected[5], "none", "none")  # type: ignore[arg-type]


FAILURES = [
    (offer(kex="curve25519-sha256"), offer(kex="diffie-hellman-group1-sha1"), NoKexMatch,
     "diffie-hellman-group1-sha1"),
    (offer(kex="ext-info-c"), offer(kex="ext-info-c"), NoKexMatch, "ext-info-c"),
    (offer(host_key="ssh-ed25519"), offer(host_key="ssh-rsa,ssh-dss"), NoHostKeyMatch,
     "ssh-rsa,ssh-dss"),
    (offer(ciphers="aes128-ctr"), offer(ciphers="3des-cbc"), NoCipherMatch, "3des-cbc"),
    (offer(macs="hmac-sha2-256"), offer(macs="hmac-md5"), NoMacMatch, "hmac-md5"),
    (offer(comp="none"), offer(comp="zlib"), NoCompressMatch, "zlib"),
    (offer(ciphers=""), offer(), NoCipherMatch, "aes128-ctr"),
]


@pytest.mark.parametrize(("client", "server", "error", "theirs"), FAILURES)
def test_negotiation_failures_quote_the_peer(client: KexInit, server: KexInit,
                                             error: type[NegotiationFailed], theirs: str) -> None:
    with pytest.raises(error) as info:
        negotiate(client, server, we_are_client=True)
    assert info.value.their_offer == theirs
    # seen from the server, "their offer" is the client's list
    with pytest.raises(error):
        negotiate(client, server, we_are_client=False)


def test_error_words_are_openssh_ssherr() -> None:
    assert str(NoKexMatch()) == "no matching key exchange method found"
    assert str(NoHostKeyMatch()) == "no matching host key type found"
    assert str(NoCipherMatch()) == "no matching cipher found"
    assert str(NoMacMatch()) == "no matching MAC found"


def test_kexinit_round_trip_and_truncation() -> None:
    ours = KexInit.build(Preferences(), extra_kex=("ext-info-c",))
    parsed = KexInit.parse(ours.payload)
    assert parsed == ours
    assert parsed.kex[-1] == "ext-info-c" and not parsed.first_kex_follows
    assert parsed.payload == ours.encode()
    for cut in (1, 17, 40, len(ours.payload) - 1):
        with pytest.raises(MessageIncomplete):
            KexInit.parse(ours.payload[:cut])


def test_guess_rule() -> None:
    a = offer(kex="curve25519-sha256,ecdh-sha2-nistp256")
    b = offer(kex="curve25519-sha256")
    c = offer(kex="ecdh-sha2-nistp256,curve25519-sha256")
    assert guess_was_right(a, b)
    assert not guess_was_right(a, c)
    assert not guess_was_right(a, offer(host_key="rsa-sha2-512,ssh-ed25519"))


@pytest.mark.parametrize(("alg", "key", "sig"), [
    ("ssh-ed25519", "ssh-ed25519", "ssh-ed25519"),
    ("rsa-sha2-512", "ssh-rsa", "rsa-sha2-512"),
    ("rsa-sha2-256-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com", "rsa-sha2-256"),
    ("ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp384-cert-v01@openssh.com",
     "ecdsa-sha2-nistp384"),
])
def test_host_key_algorithm_names(alg: str, key: str, sig: str) -> None:
    assert key_type(alg) == key
    assert signature_algorithm(alg) == sig


def test_server_offers_sha2_only_for_rsa() -> None:
    from keytools.private import generate

    assert algorithms_for_key(generate("ed25519").public) == ("ssh-ed25519",)
    assert algorithms_for_key(generate("ecdsa", 384).public) == ("ecdsa-sha2-nistp384",)
