"""Key agreements on their own: both roles reach the same K; hostile public values fail."""

from __future__ import annotations

import pytest

from keytools.errors import DhGexOutOfRange, InvalidEcValue, InvalidFormat, SshError
from keytools.wire import Reader, Writer, mpint_bytes
from protocol.kex import METHODS
from protocol.kex.base import Agreement
from protocol.kex.derive import derive
from protocol.kex.dh import (
    DhAgreement,
    check_gex_group,
    choose_gex_group,
    exponent_bits,
    gex_request,
    public_is_valid,
)
from protocol.kex.ecdh import EcdhAgreement, X25519Agreement
from protocol.kex.groups import GROUP14, GROUP16, GROUP18
from protocol.kex.mlkem import MlKemX25519Agreement, mlkem_available


def agree(client: Agreement, server: Agreement) -> bytes:
    c_pub = client.client_public()
    c_field = server.read_public(Reader(c_pub))
    s_pub, k_server = server.server_reply(c_field)
    s_field = client.read_public(Reader(s_pub))
    k_client = client.client_shared(s_field)
    assert k_client == k_server
    return k_client


@pytest.mark.parametrize("name", sorted(n for n, m in METHODS.items() if m.agreement))
def test_both_roles_agree(name: str) -> None:
    if name.startswith("mlkem") and not mlkem_available():
        pytest.skip("no ML-KEM-768 in this cryptography build")
    factory = METHODS[name].agreement
    assert factory is not None
    k = agree(factory(), factory())
    r = Reader(k)
    if name.startswith("mlkem"):
        assert len(r.string()) == 32  # string(SHA-256(...)), not an mpint
    else:
        r.mpint()
    r.end()


def test_group_exchange_with_an_unknown_group_uses_plain_arithmetic() -> None:
    """A generator other than 2 makes the group "unknown": pow() on both sides."""
    a, b = DhAgreement(GROUP14, 5, 512), DhAgreement(GROUP14, 5, 512)
    assert not a._known
    agree(a, b)


def test_known_and_unknown_paths_interoperate() -> None:
    known = DhAgreement(GROUP14, 2)
    unknown = DhAgreement(GROUP14, 2, 512)
    unknown._known = False
    agree(known, unknown)
    agree(DhAgreement(GROUP14, 2, 512), known)


@pytest.mark.parametrize("value", [0, 1, GROUP14 - 1, GROUP14, GROUP14 + 5, 1 << 1000])
def test_dh_public_values_out_of_range(value: int) -> None:
    assert not public_is_valid(value, GROUP14)
    with pytest.raises(SshError):
        DhAgreement(GROUP14).read_public(Reader(Writer().mpint(value).getvalue()))


def test_gex_sizes_follow_openssh() -> None:
    assert gex_request(16) == (2048, 3072, 8192)
    assert gex_request(32) == (2048, 8192, 8192)
    assert exponent_bits(16) == 512 and exponent_bits(64) == 1024
    assert choose_gex_group(2048, 3072, 8192) == (GROUP16, 2)
    assert choose_gex_group(2048, 8192, 8192) == (GROUP18, 2)
    assert choose_gex_group(1024, 1024, 2048) == (GROUP14, 2)
    with pytest.raises(DhGexOutOfRange):
        choose_gex_group(4096, 3072, 2048)
    with pytest.raises(DhGexOutOfRange):
        check_gex_group(GROUP14, 2, 3072, 8192)
    with pytest.raises(InvalidFormat):
        check_gex_group(GROUP14, 1, 2048, 8192)
    check_gex_group(GROUP18, 2, 2048, 8192)


def test_x25519_refuses_small_order_points() -> None:
    client = X25519Agreement()
    client.client_public()
    for point in (bytes(32), b"\x01" + bytes(31)):
        with pytest.raises(InvalidEcValue):
            client.client_shared(Writer().string(point).getvalue())
    with pytest.raises(InvalidEcValue):
        client.read_public(Reader(Writer().string(bytes(31)).getvalue()))


def test_ecdh_refuses_points_off_the_curve_or_compressed() -> None:
    agreement = EcdhAgreement("nistp256")
    good = Reader(agreement.client_public()).string()
    for bad in (b"\x04" + bytes(64), b"\x02" + good[1:33], good[:-1]):
        with pytest.raises(InvalidEcValue):
            agreement.read_public(Reader(Writer().string(bad).getvalue()))


def test_mlkem_refuses_wrong_sizes() -> None:
    if not mlkem_available():
        pytest.skip("no ML-KEM-768 in this cryptography build")
    client = MlKemX25519Agreement()
    client.client_public()
    with pytest.raises(InvalidFormat):
        client.client_shared(Writer().string(bytes(1000)).getvalue())
    with pytest.raises(InvalidFormat):
        MlKemX25519Agreement().server_reply(Writer().string(bytes(1120)).getvalue())


def test_derive_extends_with_previous_output() -> None:
    """RFC 4253 7.2: K1 = HASH(K || H || X || session_id), K2 = HASH(K || H || K1)."""
    from protocol.kex.base import digest

    k, h, sid = mpint_bytes(12345), b"h" * 32, b"s" * 32
    k1 = digest("sha256", k, h, b"C", sid)
    k2 = digest("sha256", k, h, k1)
    assert derive("sha256", k, h, b"C", sid, 64) == k1 + k2
    assert derive("sha256", k, h, b"C", sid, 12) == k1[:12]
    assert derive("sha256", k, h, b"C", sid, 0) == b""
