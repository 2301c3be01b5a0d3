"""Client role against server role of our own transport: every kex method (including
mlkem768x25519-sha256, which the installed OpenSSH 9.2 lacks), cipher, MAC and host key
type; rekeying both ways; strict kex (the Terrapin fix); EXT_INFO and ping."""

from __future__ import annotations

import asyncio

import pytest

from keytools.errors import ProtocolError
from keytools.keyfile import load_private
from keytools.private import PrivateKey, generate
from keytools.wire import Writer
from protocol import messages
from protocol.ciphers import CIPHERS, MACS
from protocol.errors import DisconnectReceived, HostKeyNotVerified
from protocol.kex import METHODS, Preferences
from protocol.kex.mlkem import mlkem_available
from protocol.transport import DEFAULT_SERVER_SIG_ALGS, Transport, TransportConfig
from tests.helpers import private_copy
from tests.protocol.loopback import Loopback, loopback


@pytest.fixture(scope="module")
def host_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PrivateKey]:
    rsa_path = private_copy("sshkey/rsa_2", tmp_path_factory.mktemp("rsa"))
    return {
        "ed25519": generate("ed25519"),
        "ecdsa256": generate("ecdsa", 256),
        "ecdsa384": generate("ecdsa", 384),
        "ecdsa521": generate("ecdsa", 521),
        "rsa": load_private(str(rsa_path), None)[0],
    }


def config(**prefs: tuple[str, ...]) -> TransportConfig:
    return TransportConfig(algorithms=Preferences(**prefs))


async def exercise(lb: Loopback) -> None:
    """Traffic both ways under the new keys: a service request and its accept."""
    await asyncio.wait_for(lb.client.request_service("ssh-userauth"), 10)


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


@pytest.mark.parametrize("kex", sorted(METHODS))
def test_every_kex_method(kex: str, host_keys: dict[str, PrivateKey]) -> None:
    if kex.startswith("mlkem") and not mlkem_available():
        pytest.skip("this cryptography build has no ML-KEM-768")

    async def main() -> None:
        lb, cerr, serr = await loopback([host_keys["ed25519"]], client_config=config(kex=(kex,)))
        assert lb is not None, (cerr, serr)
        assert lb.client.kex is not None and lb.server.kex is not None
        assert lb.client.kex.algorithms == lb.server.kex.algorithms
        assert lb.client.kex.algorithms is not None and lb.client.kex.algorithms.kex == kex
        assert lb.client.session_id == lb.server.session_id
        assert len(lb.client.session_id) == {"sha256": 32, "sha384": 48, "sha512": 64}[
            METHODS[kex].hash_name]
        assert lb.client.kex.strict and lb.server.kex.strict
        await exercise(lb)
        await lb.close()

    run(main())


SUITES = [(c, None) for c, s in CIPHERS.items() if s.aead] + [
    (c, m) for c, s in CIPHERS.items() if not s.aead for m in MACS
]


@pytest.mark.parametrize(("cipher", "mac"), SUITES)
def test_every_cipher_and_mac(cipher: str, mac: str | None,
                              host_keys: dict[str, PrivateKey]) -> None:
    async def main() -> None:
        prefs = {"ciphers": (cipher,)}
        if mac is not None:
            prefs["macs"] = (mac,)
        lb, cerr, serr = await loopback([host_keys["ed25519"]], client_config=config(**prefs))
        assert lb is not None, (cerr, serr)
        algs = lb.client.kex.algorithms if lb.client.kex else None
        assert algs is not None
        assert (algs.cipher_c2s, algs.cipher_s2c, algs.mac_c2s, algs.mac_s2c) == (
            cipher, cipher, mac, mac)
        await exercise(lb)
        await lb.client.rekey()
        await exercise(lb)
        await lb.close()

    run(main())


@pytest.mark.parametrize(("key_name", "alg"), [
    ("ed25519", "ssh-ed25519"),
    ("ecdsa256", "ecdsa-sha2-nistp256"),
    ("ecdsa384", "ecdsa-sha2-nistp384"),
    ("ecdsa521", "ecdsa-sha2-nistp521"),
    ("rsa", "rsa-sha2-512"),
    ("rsa", "rsa-sha2-256"),
])
def test_every_host_key_algorithm(key_name: str, alg: str,
                                  host_keys: dict[str, PrivateKey]) -> None:
    async def main() -> None:
        lb, cerr, serr = await loopback(list(host_keys.values()),
                                        client_config=config(host_key=(alg,)))
        assert lb is not None, (cerr, serr)
        assert lb.client.kex is not None and lb.client.kex.algorithms is not None
        assert lb.client.kex.algorithms.host_key == alg
        assert [k.blob() for k in lb.seen_keys] == [host_keys[key_name].public.blob()]
        await exercise(lb)
        await lb.close()

    run(main())


def test_rekey_from_either_side_keeps_session_id(host_keys: dict[str, PrivateKey]) -> None:
    async def main() -> None:
        lb, cerr, serr = await loopback([host_keys["ed25519"]])
        assert lb is not None, (cerr, serr)
        session_id = lb.client.session_id
        await lb.client.rekey()
        await exercise(lb)
        await lb.server.rekey()
        await exercise(lb)
        # A service request sent while our KEXINIT is outstanding is held until NEWKEYS.
        assert lb.client.kex is not None
        lb.client.kex.start()
        await exercise(lb)
        assert lb.client.kex.completed >= 3
        assert lb.client.session_id == lb.server.session_id == session_id
        assert len(lb.seen_keys) == 1  # the host key check runs once, not at rekeys
        await lb.close()

    run(main())


def test_strict_kex_resets_sequence_numbers(host_keys: dict[str, PrivateKey]) -> None:
    async def main() -> None:
        lb, _, _ = await loopback([host_keys["ed25519"]])
        assert lb is not None
        # After NEWKEYS the count restarts: the server sent EXT_INFO only, the client nothing.
        assert lb.server._out.seq == 1 and lb.client._in.seq == 1
        assert lb.client._out.seq == 0
        await lb.close()

    run(main())


class _TerrapinServer(Transport):
    """A server that slips an IGNORE in before its NEWKEYS (what Terrapin exploits)."""

    def send_kex(self, payload: bytes) -> None:
        if payload[0] == messages.NEWKEYS:
            self._write(Writer().byte(messages.IGNORE).string(b"x").getvalue())
        super().send_kex(payload)


class _IgnoreFirstServer(Transport):
    """A server whose first packet is an IGNORE, so KEXINIT is not sequence number 0."""

    def send_kex(self, payload: bytes) -> None:
        if payload[0] == messages.KEXINIT and self.kex is not None and self.kex.completed == 0:
            self._write(Writer().byte(messages.IGNORE).string(b"").getvalue())
        super().send_kex(payload)


@pytest.mark.parametrize("server_cls", [_TerrapinServer, _IgnoreFirstServer])
def test_strict_kex_makes_injected_messages_fatal(
        server_cls: type[Transport], host_keys: dict[str, PrivateKey]) -> None:
    async def main() -> None:
        lb, cerr, serr = await loopback([host_keys["ed25519"]], server_cls=server_cls)
        assert lb is None
        assert isinstance(cerr, ProtocolError) and "strict KEX" in str(cerr)
        assert isinstance(serr, DisconnectReceived)
        assert serr.reason == 2 and "strict KEX" in serr.description

    run(main())


@pytest.mark.parametrize("server_cls", [_TerrapinServer, _IgnoreFirstServer])
def test_without_strict_kex_the_injection_is_tolerated(
        server_cls: type[Transport], host_keys: dict[str, PrivateKey]) -> None:
    async def main() -> None:
        lb, cerr, serr = await loopback([host_keys["ed25519"]], server_cls=server_cls,
                                        client_config=TransportConfig(strict_kex=False))
        assert lb is not None, (cerr, serr)
        assert lb.client.kex is not None and not lb.client.kex.strict
        await exercise(lb)
        await lb.close()

    run(main())


def test_rejected_host_key(host_keys: dict[str, PrivateKey]) -> None:
    async def main() -> None:
        lb, cerr, serr = await loopback([host_keys["ed25519"]], accept=False)
        assert lb is None
        assert isinstance(cerr, HostKeyNotVerified)
        assert isinstance(serr, DisconnectReceived) and serr.reason == 9

    run(main())


def test_no_common_algorithm_disconnects_both(host_keys: dict[str, PrivateKey]) -> None:
    async def main() -> None:
        lb, cerr, serr = await loopback(
            [host_keys["ed25519"]], client_config=config(kex=("curve25519-sha256",)),
            server_config=config(kex=("ecdh-sha2-nistp256",)))
        assert lb is None
        assert str(cerr) == "no matching key exchange method found"
        assert cerr is not None and getattr(cerr, "their_offer", "").startswith(
            "ecdh-sha2-nistp256")
        assert isinstance(serr, (DisconnectReceived, type(cerr)))

    run(main())


def test_ext_info_and_ping(host_keys: dict[str, PrivateKey]) -> None:
    async def main() -> None:
        lb, _, _ = await loopback([host_keys["ed25519"]])
        assert lb is not None
        assert lb.client.server_sig_algs == DEFAULT_SERVER_SIG_ALGS
        assert lb.client.peer_extensions["ping@openssh.com"] == b"0"
        lb.server.authenticated = True  # pings are answered only after user auth
        assert await asyncio.wait_for(lb.client.ping(b"are you there"), 10) == b"are you there"
        await lb.close()

    run(main())


def test_unknown_service_is_refused_with_reason_7(host_keys: dict[str, PrivateKey]) -> None:
    async def main() -> None:
        lb, _, _ = await loopback([host_keys["ed25519"]])
        assert lb is not None
        try:
            await asyncio.wait_for(lb.client.request_service("ssh-nonsense"), 10)
        except DisconnectReceived as exc:
            assert exc.reason == 7
            assert exc.description == "requested service ssh-nonsense not available"
        else:
            raise AssertionError("the service request was accepted")
        await lb.close()

    run(main())


def test_unknown_message_gets_unimplemented(host_keys: dict[str, PrivateKey]) -> None:
    """A message number nobody handles is answered with UNIMPLEMENTED and its seqnr."""
    async def main() -> None:
        lb, _, _ = await loopback([host_keys["ed25519"]])
        assert lb is not None
        seq = lb.client._out.seq
        lb.client.send(bytes((150,)) + b"whatever")
        await exercise(lb)  # a round trip later, the answer has arrived
        assert list(lb.client.unimplemented) == [seq]
        await lb.close()

    run(main())
