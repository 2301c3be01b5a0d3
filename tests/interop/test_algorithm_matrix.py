"""The algorithm matrix, both ways: pyssh (the library, in-process) against the REAL sshd,
and the REAL ssh against pysshd.

Every key exchange, every cipher x MAC pair (a MAC only with a non-AEAD cipher) and
every host key algorithm (plain and -cert-v01 through HostCertificate, checked against
@cert-authority) that both sides support completes and runs a command. Not the cross
product: connection i takes kex[i], suite[i] and host key algorithm[i] (each list
cycled), so the number of connections is the longest list. What the installed OpenSSH
lacks (``ssh -Q``) is left out with the reason; mlkem768x25519-sha256 before OpenSSH 9.9
runs pyssh against pysshd instead. Also: zlib@openssh.com, and HostKeyAgent.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keytools.keyfile import load_private, load_public
from keytools.private import PrivateKey
from keytools.public import PublicKey
from protocol.ciphers import CIPHERS, MACS
from protocol.client import connect
from protocol.kex import METHODS, Preferences
from protocol.kex.hostkey import key_type
from protocol.kex.kexinit import DEFAULT_HOST_KEY_ALGORITHMS
from protocol.transport import TransportConfig
from tests.helpers import private_copy, run, stop_process, tool_path
from tests.interop.pysshd import (
    PYSSHD,
    USER,
    PysshdServer,
    keygen,
    pysshd_env,
    start_pysshd,
)
from tests.interop.sshd import SshdServer, start_sshd

TIMEOUT = 30
CERT = "-cert-v01@openssh.com"
#: host key algorithm -> the host key file serving it
KEY_FOR = {
    "ssh-ed25519": "ed25519", "ecdsa-sha2-nistp256": "ecdsa256",
    "ecdsa-sha2-nistp384": "ecdsa384", "ecdsa-sha2-nistp521": "ecdsa521",
    "rsa-sha2-512": "rsa", "rsa-sha2-256": "rsa",
}


@functools.cache
def ssh_query(what: str) -> tuple[str, ...]:
    if shutil.which("ssh") is None:
        return ()
    return tuple(run(["ssh", "-Q", what]).stdout.split())


def both_kex() -> list[str]:
    return [k for k in METHODS if k in ssh_query("kex")]


def both_suites() -> list[tuple[str, str | None]]:
    ciphers = [c for c in CIPHERS if c in ssh_query("cipher")]
    macs = [m for m in MACS if m in ssh_query("mac")]
    return ([(c, None) for c in ciphers if CIPHERS[c].aead]
            + [(c, m) for c in ciphers if not CIPHERS[c].aead for m in macs])


def both_host_key_algorithms() -> list[str]:
    return [a for a in DEFAULT_HOST_KEY_ALGORITHMS if a in ssh_query("HostKeyAlgorithms")]


@dataclass(frozen=True)
class Combo:
    kex: str
    cipher: str
    mac: str | None
    host_key: str

    def __str__(self) -> str:
        return f"{self.kex}|{self.cipher}|{self.mac or 'aead'}|{self.host_key}"


def combos() -> list[Combo]:
    kex, suites, hk = both_kex(), both_suites(), both_host_key_algorithms()
    if not (kex and suites and hk):
        return []
    n = max(len(kex), len(suites), len(hk))
    return [Combo(kex[i % len(kex)], *suites[i % len(suites)], hk[i % len(hk)])
            for i in range(n)]


COMBOS = combos()


def lacking_note() -> str:
    """What pyssh has and the installed OpenSSH lacks (reported in the skip reasons)."""
    missing = ([k for k in METHODS if k not in ssh_query("kex")]
               + [c for c in CIPHERS if c not in ssh_query("cipher")]
               + [m for m in MACS if m not in ssh_query("mac")])
    return ", ".join(missing) or "nothing"


@dataclass
class Matrix:
    directory: Path
    host_keys: dict[str, PublicKey]
    ca: PublicKey
    user: PrivateKey
    sshd: SshdServer
    pysshd: PysshdServer

    def known_hosts(self, port: int) -> Path:
        """@cert-authority for the certificates, plus each plain host key."""
        path = self.directory / f"known_hosts_{port}"
        lines = [f"@cert-authority [127.0.0.1]:{port} {self.ca.openssh()}"]
        lines += [f"[127.0.0.1]:{port} {k.openssh()}" for k in self.host_keys.values()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def check_host_key(self, alg: str) -> object:
        """A pyssh HostKeyCheck that wants exactly the key (or certificate) for ``alg``."""
        seen: list[PublicKey] = []

        def check(host: str, port: int, key: PublicKey) -> bool:
            seen.append(key)
            plain = key.plain if key.is_certificate else key
            if key.is_certificate != alg.endswith(CERT):
                return False
            if key.is_certificate:
                from keytools.certificate import Certificate

                assert isinstance(key, Certificate)
                if key.signature_key.blob() != self.ca.blob():
                    return False
            return plain.blob() == self.host_keys[KEY_FOR[alg.removesuffix(CERT)]].blob()

        check.seen = seen  # type: ignore[attr-defined]
        return check


ALL_KEYS = ("ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    d = tmp_path_factory.mktemp("matrix")
    keygen("-q", "-t", "ed25519", "-N", "", "-f", d / "ca")
    keygen("-q", "-t", "ed25519", "-N", "", "-f", d / "id")
    for name, args in (("ed25519", ("-t", "ed25519")), ("ecdsa256", ("-t", "ecdsa", "-b", "256")),
                       ("ecdsa384", ("-t", "ecdsa", "-b", "384")),
                       ("ecdsa521", ("-t", "ecdsa", "-b", "521"))):
        keygen("-q", *args, "-N", "", "-f", d / name)
    private_copy("sshkey/rsa_2", d).rename(d / "rsa")
    (d / "rsa.pub").write_text(load_private(str(d / "rsa"), None)[0].public.openssh("rsa") + "\n")
    for name in ALL_KEYS:
        keygen("-q", "-s", d / "ca", "-h", "-I", f"host-{name}", "-n", "127.0.0.1",
               d / f"{name}.pub")
    user = load_private(str(d / "id"), None)[0]
    (d / "authorized_keys").write_text(user.public.openssh("id") + "\n")
    host_lines = "".join(f"HostKey {d / n}\nHostCertificate {d / n}-cert.pub\n"
                         for n in ALL_KEYS[1:])
    sshd_lists = (
        f"KexAlgorithms {','.join(both_kex())}\n"
        f"Ciphers {','.join(c for c in CIPHERS if c in ssh_query('cipher'))}\n"
        f"MACs {','.join(m for m in MACS if m in ssh_query('mac'))}\n"
        f"HostKeyAlgorithms {','.join(both_host_key_algorithms())}\n")
    sshd = start_sshd(d / "sshd", sshd_lists + host_lines
                      + f"HostCertificate {d / 'ed25519'}-cert.pub\n"
                      + f"AuthorizedKeysFile {d / 'authorized_keys'}\n",
                      host_key=d / "ed25519")
    ours = (f"KexAlgorithms {','.join(METHODS)}\nCiphers {','.join(CIPHERS)}\n"
            f"MACs {','.join(MACS)}\nHostKeyAlgorithms {','.join(DEFAULT_HOST_KEY_ALGORITHMS)}\n")
    try:
        pysshd = start_pysshd(d, ours + f"HostKey {d / 'ed25519'}\n"
                              f"HostCertificate {d / 'ed25519'}-cert.pub\n" + host_lines
                              + f"AuthorizedKeysFile {d / 'authorized_keys'}\n"
                              "LogLevel DEBUG\n")
    except BaseException:
        sshd.stop()
        raise
    keys = {n: load_public(str(d / f"{n}.pub"))[0] for n in ALL_KEYS}
    try:
        yield Matrix(d, keys, load_public(str(d / "ca.pub"))[0], user, sshd, pysshd)
    finally:
        pysshd.stop()
        sshd.stop()


def real_ssh(m: Matrix, port: int, combo: Combo | None, *options: str,
             command: str = "echo matrix-ok") -> subprocess.CompletedProcess[str]:
    """The real ssh, verbose, with strict checking against ``known_hosts``."""
    cmd = [tool_path("ssh"), "-v", "-F", "/dev/null", "-p", str(port),
           "-i", str(m.directory / "id"),
           "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20",
           "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={m.known_hosts(port)}",
           "-o", "GlobalKnownHostsFile=/dev/null"]
    if combo is not None:
        cmd += ["-o", f"KexAlgorithms={combo.kex}", "-o", f"Ciphers={combo.cipher}",
                "-o", f"HostKeyAlgorithms={combo.host_key}"]
        if combo.mac is not None:
            cmd += ["-o", f"MACs={combo.mac}"]
    for option in options:
        cmd += ["-o", option]
    env = pysshd_env()
    env["HOME"] = str(m.directory / "client")
    return run([*cmd, f"{USER}@127.0.0.1", command], env=env, timeout=60)


def assert_negotiated(log: str, combo: Combo) -> None:
    """ssh -v's own account of what it negotiated."""
    assert f"kex: algorithm: {combo.kex}" in log, log
    assert f"kex: host key algorithm: {combo.host_key}" in log, log
    for way in ("server->client", "client->server"):
        assert f"kex: {way} cipher: {combo.cipher} MAC: {combo.mac or '<implicit>'}" in log, log


@pytest.mark.parametrize("combo", COMBOS, ids=str)
def test_real_ssh_to_pysshd(matrix: Matrix, combo: Combo) -> None:
    done = real_ssh(matrix, matrix.pysshd.port, combo)
    assert (done.returncode, done.stdout) == (0, "matrix-ok\n"), \
        done.stderr[-3000:] + matrix.pysshd.log_text()[-3000:]
    assert_negotiated(done.stderr, combo)
    if combo.host_key.endswith(CERT):
        assert f"Server host certificate: {key_type(combo.host_key)} " in done.stderr
        assert re.search(r"is known and matches the \S+-CERT host certificate", done.stderr)


async def pyssh_run(m: Matrix, port: int, prefs: Preferences, alg: str) -> tuple[object, bytes]:
    check = m.check_host_key(alg)
    conn = await connect("127.0.0.1", port, username=USER if port == m.pysshd.port else "root",
                         keys=[m.user], known_host_check=check,  # type: ignore[arg-type]
                         config=TransportConfig(algorithms=prefs), timeout=TIMEOUT)
    try:
        result = await conn.run("echo matrix-ok")
        assert result.exit_status == 0
        algs = conn.transport.kex.algorithms if conn.transport.kex else None
        return algs, result.stdout
    finally:
        await conn.close()


def prefs_for(combo: Combo) -> Preferences:
    return Preferences(kex=(combo.kex,), host_key=(combo.host_key,), ciphers=(combo.cipher,),
                       macs=(combo.mac,) if combo.mac else tuple(MACS))


@pytest.mark.parametrize("combo", COMBOS, ids=str)
def test_pyssh_to_real_sshd(matrix: Matrix, combo: Combo) -> None:
    try:
        algs, out = asyncio.run(pyssh_run(matrix, matrix.sshd.port, prefs_for(combo),
                                          combo.host_key))
    except BaseException:
        print(matrix.sshd.log_text()[-3000:])
        raise
    assert out == b"matrix-ok\n"
    assert algs is not None
    assert (algs.kex, algs.host_key, algs.cipher_c2s, algs.cipher_s2c,  # type: ignore[attr-defined]
            algs.mac_c2s, algs.mac_s2c) == (  # type: ignore[attr-defined]
        combo.kex, combo.host_key, combo.cipher, combo.cipher, combo.mac, combo.mac)


@pytest.mark.parametrize("kex", [k for k in METHODS if k not in ssh_query("kex")] or ["-"])
def test_pyssh_to_pysshd_for_what_openssh_lacks(matrix: Matrix, kex: str) -> None:
    if kex == "-":
        pytest.skip("the installed OpenSSH has every key exchange pyssh has")
    algs, out = asyncio.run(pyssh_run(
        matrix, matrix.pysshd.port, Preferences(kex=(kex,), host_key=("ssh-ed25519",)),
        "ssh-ed25519"))
    assert out == b"matrix-ok\n" and algs.kex == kex  # type: ignore[attr-defined]


def test_every_algorithm_is_covered() -> None:
    """The combination list really covers each list (and says what OpenSSH lacks)."""
    if not COMBOS:
        pytest.skip("OpenSSH ssh not installed")
    assert {c.kex for c in COMBOS} == set(both_kex())
    assert {(c.cipher, c.mac) for c in COMBOS} == set(both_suites())
    assert {c.host_key for c in COMBOS} == set(both_host_key_algorithms())
    assert len(COMBOS) == max(len(both_kex()), len(both_suites()),
                              len(both_host_key_algorithms()))
    print("pyssh has, the installed OpenSSH lacks:", lacking_note())


@pytest.mark.parametrize("direction", ["ssh->pysshd", "pyssh->sshd"])
def test_delayed_compression(matrix: Matrix, direction: str) -> None:
    if direction == "ssh->pysshd":
        done = real_ssh(matrix, matrix.pysshd.port, None, "Compression=yes",
                        command="head -c 200000 /dev/zero | od | tail -1")
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout == "0606500\n"
        assert "compression: zlib@openssh.com" in done.stderr
        return
    prefs = Preferences(host_key=("ssh-ed25519",), compression=("zlib@openssh.com",))
    algs, out = asyncio.run(pyssh_run(matrix, matrix.sshd.port, prefs, "ssh-ed25519"))
    assert out == b"matrix-ok\n"
    assert algs.compression_s2c == "zlib@openssh.com"  # type: ignore[attr-defined]


# -- HostKeyAgent: pysshd's host key held by a real ssh-agent ------------------------------


@pytest.fixture
def agent_socket(tmp_path: Path) -> Iterator[Path]:
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen([tool_path("ssh-agent"), "-D", "-a", str(sock)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if sock.exists():
                break
            asyncio.run(asyncio.sleep(0.02))
        yield sock
    finally:
        stop_process(proc)


@pytest.mark.parametrize("name", ["ed25519", "rsa"])
def test_host_key_in_agent(matrix: Matrix, agent_socket: Path, tmp_path: Path,
                           name: str) -> None:
    """HostKeyAgent + HostKey naming the .pub: real ssh verifies the agent's signature
    (for RSA with the rsa-sha2 flags), and the certificate of an agent key works too."""
    env = {**os.environ, "SSH_AUTH_SOCK": str(agent_socket)}
    added = run([tool_path("ssh-add"), "-q", str(matrix.directory / name)], env=env)
    assert added.returncode == 0, added.stderr
    srv = start_pysshd(tmp_path, f"HostKeyAgent {agent_socket}\n"
                       f"HostKey {matrix.directory / name}.pub\n"
                       f"HostCertificate {matrix.directory / name}-cert.pub\n"
                       f"AuthorizedKeysFile {matrix.directory / 'authorized_keys'}\n"
                       "HostKeyAlgorithms +ecdsa-sha2-nistp256\n")
    try:
        algs = ["rsa-sha2-512", "rsa-sha2-256"] if name == "rsa" else ["ssh-ed25519"]
        algs.append(algs[0] + CERT)
        for alg in algs:
            done = real_ssh(matrix, srv.port, None, f"HostKeyAlgorithms={alg}")
            assert (done.returncode, done.stdout) == (0, "matrix-ok\n"), \
                done.stderr[-2000:] + srv.log_text()
            assert f"kex: host key algorithm: {alg}" in done.stderr
    finally:
        srv.stop()
    # Without HostKeyAgent a public key alone is no host key, as in sshd.
    config = tmp_path / "bare_config"
    config.write_text(f"HostKey {matrix.directory / name}.pub\n")
    bare = run([*PYSSHD, "-t", "-f", str(config)], env=pysshd_env())
    assert bare.returncode == 1
    assert "no hostkeys available -- exiting." in bare.stderr
