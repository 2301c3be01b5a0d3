"""pysshd's connection handling in-process: our client (protocol.auth and channels)
against ``protocol.server.Server`` on 127.0.0.1 — authentication replies, MaxAuthTries,
LoginGraceTime, RSA SHA-2 signatures and an exec session (pyssh <-> pysshd)."""

from __future__ import annotations

import asyncio
import os
import pwd
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from keytools.errors import ConnectionClosed
from keytools.keyfile import load_private
from keytools.private import PrivateKey, generate
from keytools.public import PublicKey
from protocol.auth import authenticate
from protocol.channels import ConnectionLayer
from protocol.errors import AuthenticationFailed, DisconnectReceived
from protocol.server import Server
from protocol.sshd_config import ServerConfig
from protocol.transport import Role, Transport, TransportConfig
from tests.helpers import private_copy
from tests.interop.sshd import free_port

USER = pwd.getpwuid(os.getuid()).pw_name
HOST_KEY = generate("ed25519")


class WrongSigner:
    """Presents one key but signs with another: the server must check the signature."""

    def __init__(self, shown: PrivateKey, signing: PrivateKey) -> None:
        self._shown, self._signing = shown, signing

    @property
    def public(self) -> PublicKey:
        return self._shown.public

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        return self._signing.sign(data, algorithm)


def _config(tmp_path: Path, keys: list[PrivateKey], **changes: object) -> ServerConfig:
    ak = tmp_path / "authorized_keys"
    ak.write_text("".join(k.public.openssh() + "\n" for k in keys))
    # StrictModes no: tmp_path is under the world-writable /tmp, which sshd would refuse
    base = ServerConfig(listen_addresses=(("127.0.0.1", free_port()),),
                        authorized_keys_files=(str(ak),), strict_modes=False)
    return replace(base, **changes)  # type: ignore[arg-type]


def _run(config: ServerConfig, client: Callable[[int], Awaitable[None]]) -> None:
    async def main() -> None:
        server = Server(config, [HOST_KEY])
        await server.start()
        try:
            async with asyncio.timeout(30):
                await client(config.listeners()[0][1])
        finally:
            await server.close()

    asyncio.run(main())


async def _connect(port: int, config: TransportConfig | None = None) -> Transport:
    async def accept(key: PublicKey) -> None:
        assert key.blob() == HOST_KEY.public.blob()

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    transport = Transport(reader, writer, Role.CLIENT, config, host_key_check=accept)
    await transport.handshake()
    return transport


def test_login_and_exec(tmp_path: Path) -> None:
    key = generate("ed25519")

    async def client(port: int) -> None:
        t = await _connect(port)
        result = await authenticate(t, USER, keys=[key])
        assert result.method == "publickey"
        session = await ConnectionLayer(t).open_session()
        await session.exec("echo hi; echo oops >&2; exit 7")
        out, err = await asyncio.gather(session.read_all(), session.read_all(1))
        await session.wait_closed()
        assert (out, err, session.exit_status) == (b"hi\n", b"oops\n", 7)
        await t.close()

    _run(_config(tmp_path, [key]), client)


def test_exit_signal(tmp_path: Path) -> None:
    key = generate("ed25519")

    async def client(port: int) -> None:
        t = await _connect(port)
        await authenticate(t, USER, keys=[key])
        session = await ConnectionLayer(t).open_session()
        await session.exec("kill -TERM $$")
        await session.read_all()
        await session.wait_closed()
        assert session.exit_status is None
        assert session.exit_signal == ("TERM", False, "")
        await t.close()

    _run(_config(tmp_path, [key]), client)


def test_rsa_sha2_256_signature(tmp_path: Path) -> None:
    rsa = load_private(str(private_copy("sshkey/rsa_1", tmp_path)), None)[0]

    used: list[str | None] = []

    class Recording:
        public = rsa.public

        def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
            used.append(algorithm)
            return rsa.sign(data, algorithm)

    async def client(port: int) -> None:
        for wanted in ("rsa-sha2-256", "rsa-sha2-512"):
            t = await _connect(port)
            while "server-sig-algs" not in t.peer_extensions:
                await asyncio.sleep(0.01)
            t.peer_extensions["server-sig-algs"] = wanted.encode()  # the client's choice
            assert (await authenticate(t, USER, keys=[Recording()])).method == "publickey"
            await t.close()
        assert used == ["rsa-sha2-256", "rsa-sha2-512"]

    _run(_config(tmp_path, [rsa]), client)


def test_unknown_user_and_bad_key_get_the_same_reply(tmp_path: Path) -> None:
    key, other = generate("ed25519"), generate("ed25519")

    async def client(port: int) -> None:
        refusals = []
        for user, signer in ((USER, other), ("no-such-user-pysshd", key),
                             (USER, WrongSigner(key, other))):
            t = await _connect(port)
            with pytest.raises(AuthenticationFailed) as info:
                await authenticate(t, user, keys=[signer])
            refusals.append(info.value.methods)
            await t.close()
        assert refusals == [("publickey", "password", "keyboard-interactive")] * 3

    _run(_config(tmp_path, [key]), client)


def test_max_auth_tries_disconnects(tmp_path: Path) -> None:
    keys = [generate("ed25519") for _ in range(3)]

    async def client(port: int) -> None:
        t = await _connect(port)
        with pytest.raises((DisconnectReceived, ConnectionClosed)) as info:
            await authenticate(t, USER, keys=keys)
        assert isinstance(info.value, DisconnectReceived), info.value
        assert info.value.description == "Too many authentication failures"

    _run(_config(tmp_path, [], max_auth_tries=2), client)


def test_login_grace_time(tmp_path: Path) -> None:
    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = asyncio.get_running_loop().time()
        banner = await reader.readline()
        assert banner.startswith(b"SSH-2.0-")
        while await reader.read(4096):  # say nothing: the server must hang up
            pass
        assert asyncio.get_running_loop().time() - started < 10
        writer.close()

    _run(_config(tmp_path, [], login_grace_time=1), client)


def test_stalled_client_does_not_block_another(tmp_path: Path) -> None:
    key = generate("ed25519")

    async def client(port: int) -> None:
        stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        t = await _connect(port)
        assert (await authenticate(t, USER, keys=[key])).method == "publickey"
        await t.close()
        for _, writer in stalled:
            writer.close()

    _run(_config(tmp_path, [key]), client)



@pytest.mark.parametrize(("options", "cert_options", "permitted"), [
    ("", None, True),
    ("no-user-rc ", None, False),
    ("restrict ", None, False),
    ("restrict,user-rc ", None, True),
    ("cert-authority ", (), True),
    ("cert-authority ", ("-O", "no-user-rc"), False),
])
def test_authorization_permit_user_rc(tmp_path: Path, options: str,
                                      cert_options: tuple[str, ...] | None,
                                      permitted: bool) -> None:
    """Authorization.permit_user_rc: the key's options and the certificate's
    permit-user-rc extension must both allow ~/.ssh/rc."""
    from keytools.keyfile import load_public
    from protocol.authorized import KeyAuthorizer
    from tests.helpers import run, tool_path

    for name in ("ca", "id"):
        made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / name)])
        assert made.returncode == 0, made.stderr
    listed = tmp_path / ("ca.pub" if cert_options is not None else "id.pub")
    key = load_public(str(tmp_path / "id.pub"))[0]
    if cert_options is not None:
        made = run([tool_path("ssh-keygen"), "-q", "-s", str(tmp_path / "ca"), "-I", "t",
                    "-n", USER, *cert_options, str(tmp_path / "id.pub")])
        assert made.returncode == 0, made.stderr
        key = load_public(str(tmp_path / "id-cert.pub"))[0]
    (tmp_path / "ak").write_text(options + listed.read_text())
    config = ServerConfig(authorized_keys_files=(str(tmp_path / "ak"),), strict_modes=False)
    found = KeyAuthorizer(config, pwd.getpwuid(os.getuid()), "127.0.0.1").authorize(key)
    assert found is not None
    assert found.permit_user_rc is permitted
    if cert_options is not None:
        # CASignatureAlgorithms without the CA's algorithm: not accepted here either
        narrowed = replace(config, ca_signature_algorithms=("rsa-sha2-512",))
        assert KeyAuthorizer(narrowed, pwd.getpwuid(os.getuid()),
                             "127.0.0.1").authorize(key) is None
