"""pyssh's client stack against the real OpenSSH sshd on 127.0.0.1.

For every key exchange, cipher, MAC and host key algorithm that the installed sshd
supports (read from ``ssh -Q`` and the effective ``sshd -T`` configuration, never typed
by hand), connect, authenticate with a keytools key, run ``echo hello`` and get
"hello\\n" with exit status 0. What the installed sshd lacks (mlkem768x25519-sha256
before OpenSSH 9.9) is skipped with the reason; tests/protocol covers it against our own
server role.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keytools.keyfile import load_private, load_public
from keytools.private import PrivateKey, generate
from keytools.public import PublicKey, parse_public_line
from protocol.auth import signature_algorithm
from protocol.ciphers import CIPHERS, MACS
from protocol.client import Connection, accept_any_host_key, connect
from protocol.errors import AuthenticationFailed, HostKeyNotVerified
from protocol.kex import METHODS, Preferences
from protocol.kex.kexinit import DEFAULT_HOST_KEY_ALGORITHMS, DEFAULT_MACS
from protocol.signer import CertifiedSigner, Signer
from protocol.transport import TransportConfig
from tests.helpers import openssh_version, private_copy, run, tool_path
from tests.interop.sshd import SshdServer, sshd_path, start_sshd

TIMEOUT = 60


def ssh_query(what: str) -> set[str]:
    return set(run([tool_path("ssh"), "-Q", what]).stdout.split())


def effective(server: SshdServer) -> dict[str, set[str]]:
    """The algorithm lists of the running sshd's configuration, from ``sshd -T``."""
    out = run([sshd_path(), "-T", "-f", str(server.config)])
    assert out.returncode == 0, out.stderr
    lists: dict[str, set[str]] = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key in ("kexalgorithms", "ciphers", "macs", "hostkeyalgorithms"):
            lists[key] = set(value.split(","))
    return lists


@dataclass
class Env:
    server: SshdServer
    algorithms: dict[str, set[str]]
    keys: dict[str, PrivateKey]
    host_keys: dict[str, PublicKey]
    directory: Path


def keygen(path: Path, *args: str) -> None:
    made = run([tool_path("ssh-keygen"), "-q", "-N", "", "-f", str(path), *args])
    assert made.returncode == 0, made.stderr


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("sshd_transport")
    keys: dict[str, PrivateKey] = {
        "ed25519": generate("ed25519"),
        "ecdsa": generate("ecdsa", 256),
        "rsa": load_private(str(private_copy("sshkey/rsa_2", tmp)), None)[0],
    }
    authorized = tmp / "authorized_keys"
    authorized.write_text("".join(k.public.openssh(name) + "\n" for name, k in keys.items()))
    host_files = {"ed25519": tmp / "host_ed25519", "ecdsa": tmp / "host_ecdsa",
                  "rsa": tmp / "host_rsa"}
    keygen(host_files["ed25519"], "-t", "ed25519")
    keygen(host_files["ecdsa"], "-t", "ecdsa")
    keygen(host_files["rsa"], "-t", "rsa", "-b", "2048")
    ours = {
        "KexAlgorithms": [k for k in METHODS if k in ssh_query("kex")],
        "Ciphers": [c for c in CIPHERS if c in ssh_query("cipher")],
        "MACs": [m for m in MACS if m in ssh_query("mac")],
    }
    config = "\n".join(
        [f"AuthorizedKeysFile {authorized}"]
        + [f"{name} {','.join(values)}" for name, values in ours.items()]
        + [f"HostKey {host_files['ecdsa']}", f"HostKey {host_files['rsa']}"]
    )
    server = start_sshd(tmp / "sshd", config, host_key=host_files["ed25519"])
    host_keys = {name: load_public(str(path) + ".pub")[0] for name, path in host_files.items()}
    try:
        yield Env(server, effective(server), keys, host_keys, tmp)
    finally:
        server.stop()


async def login(env: Env, *, keys: list[Signer] | None = None,
                check: Callable[[str, int, PublicKey], bool] = accept_any_host_key,
                **prefs: tuple[str, ...]) -> Connection:
    signers: list[Signer] = [env.keys["ed25519"]] if keys is None else keys
    config = TransportConfig(algorithms=Preferences(**prefs))
    return await connect("127.0.0.1", env.server.port, username="root", keys=signers,
                         known_host_check=check, config=config, timeout=TIMEOUT)


async def echo_hello(conn: Connection) -> None:
    try:
        result = await conn.run("echo hello")
        assert result == (0, b"hello\n", b"")
    finally:
        await conn.close()


def drive(env: Env, coro_factory: Callable[[], object]) -> None:
    try:
        asyncio.run(coro_factory())  # type: ignore[arg-type]
    except BaseException:
        print(env.server.log_text()[-4000:])
        raise


@pytest.mark.parametrize("kex", list(METHODS))
def test_key_exchange(env: Env, kex: str) -> None:
    if kex not in env.algorithms["kexalgorithms"]:
        major, minor = openssh_version()
        pytest.skip(f"the installed sshd (OpenSSH {major}.{minor}) does not offer {kex}; "
                    "tests/protocol/test_transport_loopback.py runs it against our server role")

    async def main() -> None:
        conn = await login(env, kex=(kex,))
        assert conn.transport.kex is not None and conn.transport.kex.algorithms is not None
        assert conn.transport.kex.algorithms.kex == kex
        # Strict kex whenever this sshd knows it (9.6+, or Debian 12's Terrapin backport).
        assert conn.transport.kex.strict == _sshd_knows_strict_kex()
        await echo_hello(conn)

    drive(env, main)


def _sshd_knows_strict_kex() -> bool:
    return b"kex-strict-s-v00@openssh.com" in Path(sshd_path()).read_bytes()


# Each AEAD cipher, each CTR cipher with one MAC, and each MAC with aes128-ctr.
SUITES = (
    [(c, None) for c, s in CIPHERS.items() if s.aead]
    + [(c, "hmac-sha2-256-etm@openssh.com") for c, s in CIPHERS.items() if not s.aead]
    + [("aes128-ctr", m) for m in MACS if m != "hmac-sha2-256-etm@openssh.com"]
)


@pytest.mark.parametrize(("cipher", "mac"), SUITES)
def test_cipher_and_mac(env: Env, cipher: str, mac: str | None) -> None:
    if cipher not in env.algorithms["ciphers"] or (mac and mac not in env.algorithms["macs"]):
        pytest.skip(f"the installed sshd does not offer {cipher} {mac or ''}")

    async def main() -> None:
        conn = await login(env, ciphers=(cipher,), macs=(mac,) if mac else DEFAULT_MACS)
        algs = conn.transport.kex.algorithms if conn.transport.kex else None
        assert algs is not None
        assert (algs.cipher_c2s, algs.cipher_s2c, algs.mac_c2s, algs.mac_s2c) == (
            cipher, cipher, mac, mac)
        await echo_hello(conn)

    drive(env, main)


@pytest.mark.parametrize(("alg", "name"), [
    ("ssh-ed25519", "ed25519"), ("ecdsa-sha2-nistp256", "ecdsa"),
    ("rsa-sha2-512", "rsa"), ("rsa-sha2-256", "rsa"),
])
def test_host_key_algorithm(env: Env, alg: str, name: str) -> None:
    if alg not in env.algorithms["hostkeyalgorithms"]:
        pytest.skip(f"the installed sshd does not offer {alg}")
    seen: list[tuple[str, int, PublicKey]] = []

    def check(host: str, port: int, key: PublicKey) -> bool:
        seen.append((host, port, key))
        return True

    async def main() -> None:
        conn = await login(env, check=check, host_key=(alg,))
        await echo_hello(conn)

    drive(env, main)
    assert len(seen) == 1
    host, port, key = seen[0]
    assert (host, port) == ("127.0.0.1", env.server.port)
    assert key.blob() == env.host_keys[name].blob()


@pytest.mark.parametrize("name", ["ed25519", "ecdsa", "rsa"])
def test_user_key_types(env: Env, name: str) -> None:
    key = env.keys[name]

    async def main() -> None:
        conn = await login(env, keys=[key])
        assert conn.auth.method == "publickey"
        if name == "rsa":  # SHA-2 by server-sig-algs, never ssh-rsa
            assert signature_algorithm(key.public, conn.transport.server_sig_algs) == \
                "rsa-sha2-512"
        await echo_hello(conn)

    drive(env, main)
    log = env.server.log_text()
    assert "Accepted publickey for root from 127.0.0.1" in log
    # sshd >= 8.9 advertises publickey-hostbound@openssh.com; we then bind the host key.
    assert "publickey-hostbound-v00@openssh.com" in log


def test_wrong_key_is_refused_like_ssh(env: Env, tmp_path: Path) -> None:
    stranger = generate("ed25519")

    async def main() -> None:
        with pytest.raises(AuthenticationFailed) as info:
            await login(env, keys=[stranger])
        assert info.value.methods == ("publickey",)
        assert str(info.value) == "Permission denied (publickey)."

    drive(env, main)
    # The real ssh with an unknown key prints the same words.
    keyfile = tmp_path / "id_other"
    keygen(keyfile, "-t", "ed25519")
    refused = env.server.ssh("true", identity=keyfile)
    assert refused.returncode == 255
    assert "Permission denied (publickey)." in refused.stderr


def test_host_key_refused_by_callback(env: Env) -> None:
    async def main() -> None:
        with pytest.raises(HostKeyNotVerified):
            await login(env, check=lambda host, port, key: False)

    drive(env, main)


def test_exit_status_stderr_and_stdin(env: Env) -> None:
    data = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32)  # 3 MiB > one window

    async def main() -> None:
        conn = await login(env)
        try:
            assert await conn.run("echo out; echo err >&2; exit 3") == (3, b"out\n", b"err\n")
            result = await conn.run("cat", input=data)
            assert result.exit_status == 0
            assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(data).digest()
            result = await conn.run("head -c 3000000 /dev/zero >&2")
            assert result == (0, b"", bytes(3000000))
        finally:
            await conn.close()

    drive(env, main)


def test_client_rekey_and_ping(env: Env) -> None:
    async def main() -> None:
        conn = await login(env)
        try:
            kex = conn.transport.kex
            assert kex is not None
            await conn.transport.rekey()
            assert kex.completed == 2
            assert (await conn.run("echo hello")).stdout == b"hello\n"
            if "ping@openssh.com" in conn.transport.peer_extensions:
                assert await conn.transport.ping(b"pyssh") == b"pyssh"
        finally:
            await conn.close()

    drive(env, main)


def test_server_initiated_rekey(sshd_factory: Callable[..., SshdServer], tmp_path: Path) -> None:
    key = generate("ed25519")
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(key.public.openssh() + "\n")
    server = sshd_factory(f"AuthorizedKeysFile {authorized}\nRekeyLimit 64K")
    data = bytes(range(256)) * 4096  # 1 MiB: sshd rekeys every 64 KiB

    async def main() -> None:
        conn = await connect("127.0.0.1", server.port, username="root", keys=[key],
                             known_host_check=accept_any_host_key, timeout=TIMEOUT)
        try:
            result = await conn.run("cat", input=data)
            assert result.stdout == data
            assert conn.transport.kex is not None and conn.transport.kex.completed > 4
        finally:
            await conn.close()

    asyncio.run(main())


def test_certificates_for_host_and_user(sshd_factory: Callable[..., SshdServer],
                                        tmp_path: Path) -> None:
    """A host certificate reaches the host key callback; a user certificate logs in."""
    ca = tmp_path / "ca"
    keygen(ca, "-t", "ed25519")
    host = tmp_path / "host"
    keygen(host, "-t", "ed25519")
    signed = run([tool_path("ssh-keygen"), "-q", "-s", str(ca), "-I", "host", "-h",
                  "-n", "127.0.0.1", str(host) + ".pub"])
    assert signed.returncode == 0, signed.stderr
    user = tmp_path / "user"
    keygen(user, "-t", "ecdsa")
    signed = run([tool_path("ssh-keygen"), "-q", "-s", str(ca), "-I", "user", "-n", "root",
                  str(user) + ".pub"])
    assert signed.returncode == 0, signed.stderr
    server = sshd_factory(f"TrustedUserCAKeys {ca}.pub", host_key=host,
                          host_certificate=Path(str(host) + "-cert.pub"))
    user_key = load_private(str(user), None)[0]
    user_cert = parse_public_line((tmp_path / "user-cert.pub").read_text())[0]
    seen: list[PublicKey] = []

    def check(h: str, p: int, key: PublicKey) -> bool:
        seen.append(key)
        return True

    async def main() -> None:
        config = TransportConfig(algorithms=Preferences(host_key=DEFAULT_HOST_KEY_ALGORITHMS))
        conn = await connect("127.0.0.1", server.port, username="root",
                             keys=[CertifiedSigner(user_key, user_cert)],
                             known_host_check=check, config=config, timeout=TIMEOUT)
        await echo_hello(conn)

    asyncio.run(main())
    assert len(seen) == 1 and seen[0].is_certificate
    assert seen[0].key_type == "ssh-ed25519-cert-v01@openssh.com"
    assert seen[0].plain.blob() == load_public(str(host) + ".pub")[0].blob()
    assert "Accepted publickey for root" in server.log_text()


def test_delayed_compression(env: Env) -> None:
    out = run([sshd_path(), "-T", "-f", str(env.server.config)]).stdout
    if "compression no" in out:
        pytest.skip("this sshd has compression off")
    data = b"compressible " * 100000

    async def main() -> None:
        conn = await login(env, compression=("zlib@openssh.com",))
        try:
            algs = conn.transport.kex.algorithms if conn.transport.kex else None
            assert algs is not None and algs.compression_s2c == "zlib@openssh.com"
            assert conn.transport._out.compressor is not None
            result = await conn.run("cat", input=data)
            assert result == (0, data, b"")
            await conn.transport.rekey()
            assert (await conn.run("echo hello")).stdout == b"hello\n"
        finally:
            await conn.close()

    drive(env, main)
