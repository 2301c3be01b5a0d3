"""The real OpenSSH ``ssh`` against our server-role transport.

Our server has no user authentication yet (that is the server issue), so it answers
every USERAUTH_REQUEST with "publickey" failure: ssh must get through the key exchange
(checking our host key signature), the encrypted service request and the refusal, and
end with "Permission denied (publickey)." for every kex, cipher, MAC and host key
algorithm both sides support.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keytools.fingerprint import fingerprint
from keytools.keyfile import load_private
from keytools.private import PrivateKey, generate
from keytools.wire import Writer
from protocol import messages
from protocol.ciphers import CIPHERS, MACS
from protocol.kex import METHODS
from protocol.transport import Role, Transport
from tests.helpers import private_copy, run, tool_path


@dataclass
class ServerThread:
    """Our transport in server role, on an asyncio loop in a background thread."""

    host_keys: list[PrivateKey]

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.errors: list[str] = []
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = Transport(reader, writer, Role.SERVER, host_keys=self.host_keys)
        try:
            await transport.handshake()
            queue = transport.subscribe([messages.USERAUTH_REQUEST])
            while True:
                await queue.get()
                transport.send(Writer().byte(messages.USERAUTH_FAILURE).name_list(["publickey"])
                               .boolean(False).getvalue())
        except Exception as exc:
            self.errors.append(repr(exc))
        finally:
            transport.disconnect()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    rsa = load_private(str(private_copy("sshkey/rsa_2", tmp_path_factory.mktemp("rsa"))),
                       None)[0]
    thread = ServerThread([generate("ed25519"), generate("ecdsa", 384), rsa])
    yield thread
    thread.stop()


def ssh_query(what: str) -> set[str]:
    return set(run([tool_path("ssh"), "-Q", what]).stdout.split())


def ssh_to(server: ServerThread, tmp: Path, *options: str) -> str:
    cmd = [tool_path("ssh"), "-v", "-F", "/dev/null", "-p", str(server.port),
           "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentityFile=none",
           "-o", "ConnectTimeout=20"]
    for option in options:
        cmd += ["-o", option]
    proc = run([*cmd, "root@127.0.0.1", "true"], env={"HOME": str(tmp), "PATH": "/usr/bin:/bin"},
               timeout=60)
    assert proc.returncode == 255
    assert "Permission denied (publickey)." in proc.stderr, proc.stderr + repr(server.errors)
    stderr: str = proc.stderr
    return stderr


@pytest.mark.parametrize("kex", list(METHODS))
def test_ssh_key_exchange(server: ServerThread, tmp_path: Path, kex: str) -> None:
    if kex not in ssh_query("kex"):
        pytest.skip(f"the installed ssh does not know {kex}")
    log = ssh_to(server, tmp_path, f"KexAlgorithms={kex}")
    assert f"kex: algorithm: {kex}" in log


SUITES = (
    [(c, None) for c, s in CIPHERS.items() if s.aead]
    + [("aes256-ctr", m) for m in MACS]
    + [(c, "hmac-sha2-512") for c, s in CIPHERS.items() if not s.aead]
)


@pytest.mark.parametrize(("cipher", "mac"), SUITES)
def test_ssh_cipher_and_mac(server: ServerThread, tmp_path: Path, cipher: str,
                            mac: str | None) -> None:
    if cipher not in ssh_query("cipher") or (mac and mac not in ssh_query("mac")):
        pytest.skip("the installed ssh lacks it")
    options = [f"Ciphers={cipher}"] + ([f"MACs={mac}"] if mac else [])
    log = ssh_to(server, tmp_path, *options)
    assert f"kex: server->client cipher: {cipher} MAC: {mac or '<implicit>'}" in log
    assert f"kex: client->server cipher: {cipher} MAC: {mac or '<implicit>'}" in log


@pytest.mark.parametrize(("alg", "index"), [
    ("ssh-ed25519", 0), ("ecdsa-sha2-nistp384", 1), ("rsa-sha2-512", 2), ("rsa-sha2-256", 2),
])
def test_ssh_verifies_our_host_key(server: ServerThread, tmp_path: Path, alg: str,
                                   index: int) -> None:
    log = ssh_to(server, tmp_path, f"HostKeyAlgorithms={alg}")
    assert f"kex: host key algorithm: {alg}" in log
    m = re.search(r"Server host key: (\S+) (SHA256:\S+)", log)
    assert m is not None
    key = server.host_keys[index].public
    assert m.group(2) == fingerprint(key, "sha256")


def test_ssh_negotiates_strict_kex_and_ext_info(server: ServerThread, tmp_path: Path) -> None:
    log = ssh_to(server, tmp_path, "LogLevel=DEBUG3")
    if "kex-strict-c-v00@openssh.com" in log:  # an ssh with the Terrapin fix
        assert "will use strict KEX ordering" in log
    assert "server-sig-algs=<ssh-ed25519," in log
    assert "publickey-hostbound@openssh.com=<0>" in log
