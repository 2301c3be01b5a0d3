"""pyssh against pysshd: the matrix of issue 7, with both ends ours.

One pysshd serves the module (five host keys, each with a host certificate; every
algorithm pyssh has switched on). The client side is the library in-process
(``protocol.client.connect``), the pyssh CLI only where the CLI is the point (a pty
through ``pyssh -tt``, ``pyssh -s`` for the sftp subsystem). The Match Address blocks
give AuthorizedPrincipalsFile (client from 127.0.0.2) and password/keyboard-interactive
(127.0.0.3) their own settings on the same server.

Covered: every key exchange (mlkem768x25519-sha256 included), every cipher x MAC pair,
every host key algorithm (plain and -cert-v01 through HostCertificate, checked against
the host CA), zlib@openssh.com; every user key type; a user certificate via
TrustedUserCAKeys and via AuthorizedPrincipalsFile; a key revoked by a pykeygen KRL;
password and keyboard-interactive (as root, with a user created for the module); exec,
exit status, shell and pty; the sftp subsystem. 100 MiB through cat, pyssh -> pysshd, is
tests/interop/test_bulk_transfer.py's.
"""

from __future__ import annotations

import asyncio
import os
import pty
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from keytools.certificate import Certificate
from keytools.errors import SshError
from keytools.fingerprint import fingerprint
from keytools.keyfile import load_private, load_public
from keytools.public import PublicKey
from keytools.wire import Reader, Writer
from protocol.auth import AuthOptions
from protocol.ciphers import CIPHERS, MACS
from protocol.client import RunResult, connect
from protocol.kex import METHODS, Preferences
from protocol.kex.kexinit import DEFAULT_HOST_KEY_ALGORITHMS
from protocol.signer import CertifiedSigner, Signer
from protocol.transport import TransportConfig
from tests.helpers import REPO_ROOT, private_copy, run, stop_process
from tests.interop.pysshd import PYKEYGEN, USER, PysshdServer, keygen, pysshd_env, start_pysshd

PYSSH = [sys.executable, "-c",
         "from protocol.cli import pyssh_main; raise SystemExit(pyssh_main())"]
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
CERT = "-cert-v01@openssh.com"
ROOT = os.geteuid() == 0
PASSWORD = "Pw-" + secrets.token_hex(8)
HOST_KEYS = ("ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa")
#: host key algorithm -> the host key file serving it
KEY_FOR = {"ssh-ed25519": "ed25519", "ecdsa-sha2-nistp256": "ecdsa256",
           "ecdsa-sha2-nistp384": "ecdsa384", "ecdsa-sha2-nistp521": "ecdsa521",
           "rsa-sha2-512": "rsa", "rsa-sha2-256": "rsa"}
USER_KEYS = ("ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa")
KEYGEN_ARGS = {"ed25519": ("-t", "ed25519"), "ecdsa256": ("-t", "ecdsa", "-b", "256"),
               "ecdsa384": ("-t", "ecdsa", "-b", "384"), "ecdsa521": ("-t", "ecdsa", "-b", "521")}


@dataclass(frozen=True)
class Combo:
    kex: str
    cipher: str
    mac: str | None
    host_key: str

    def __str__(self) -> str:
        return f"{self.kex}|{self.cipher}|{self.mac or 'aead'}|{self.host_key}"


def combos() -> list[Combo]:
    """Connection i takes kex[i], suite[i] and host key algorithm[i], each list cycled:
    every entry of every list once, in as many connections as the longest list."""
    kex = list(METHODS)
    suites: list[tuple[str, str | None]] = (
        [(c, None) for c in CIPHERS if CIPHERS[c].aead]
        + [(c, m) for c in CIPHERS if not CIPHERS[c].aead for m in MACS])
    hk = list(DEFAULT_HOST_KEY_ALGORITHMS)
    n = max(len(kex), len(suites), len(hk))
    return [Combo(kex[i % len(kex)], suites[i % len(suites)][0], suites[i % len(suites)][1],
                  hk[i % len(hk)]) for i in range(n)]


COMBOS = combos()


@dataclass
class Env:
    directory: Path
    server: PysshdServer
    host_keys: dict[str, PublicKey]
    host_ca: PublicKey
    test_user: str | None

    def user_key(self, name: str) -> Signer:
        return load_private(str(self.directory / name), None)[0]

    def certified(self, name: str) -> Signer:
        cert = load_public(str(self.directory / f"{name}-cert.pub"))[0]
        return CertifiedSigner(self.user_key(name), cert)

    def check_host_key(self, alg: str) -> object:
        """A HostKeyCheck that wants exactly the key, or the host CA's certificate of
        the key, that ``alg`` names."""
        def check(host: str, port: int, key: PublicKey) -> bool:
            if key.is_certificate != alg.endswith(CERT):
                return False
            if isinstance(key, Certificate):
                key.check_signature()
                if key.signature_key.blob() != self.host_ca.blob():
                    return False
            plain = key.plain if key.is_certificate else key
            return plain.blob() == self.host_keys[KEY_FOR[alg.removesuffix(CERT)]].blob()

        return check

    def log(self) -> str:
        return self.server.log_text()


def _make_user() -> str:
    name = f"pyssh-t-{secrets.token_hex(3)}"
    done = run(["useradd", "-m", "-s", "/bin/sh", name])
    assert done.returncode == 0, done.stderr
    done = run(["chpasswd"], input=f"{name}:{PASSWORD}\n")
    if done.returncode != 0:
        run(["userdel", "-r", name])
        raise AssertionError(done.stderr)
    return name


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    d = tmp_path_factory.mktemp("pyssh-pysshd")
    for name in ("host_ca", "user_ca", "certified", "principal", "revoked", "id"):
        keygen("-q", "-t", "ed25519", "-N", "", "-C", name, "-f", d / name)
    for name, args in KEYGEN_ARGS.items():
        keygen("-q", *args, "-N", "", "-f", d / f"host_{name}")
        keygen("-q", *args, "-N", "", "-f", d / f"user_{name}")
    for prefix, source in (("host", "sshkey/rsa_2"), ("user", "sshkey/rsa_1")):
        private_copy(source, d).rename(d / f"{prefix}_rsa")
        key = load_private(str(d / f"{prefix}_rsa"), None)[0]
        (d / f"{prefix}_rsa.pub").write_text(key.public.openssh(prefix) + "\n")
    for name in HOST_KEYS:
        keygen("-q", "-s", d / "host_ca", "-h", "-I", f"host-{name}", "-n", "127.0.0.1",
               d / f"host_{name}.pub")
    keygen("-q", "-s", d / "user_ca", "-I", "trusted-ca", "-n", USER, "-V", "-5m:+1h",
           d / "certified.pub")
    keygen("-q", "-s", d / "user_ca", "-I", "via-principals", "-n", "ops,deploy",
           "-V", "-5m:+1h", d / "principal.pub")
    krl = run([*PYKEYGEN, "-k", "-f", str(d / "revoked.krl"), str(d / "revoked.pub")],
              env=pysshd_env())
    assert krl.returncode == 0, krl.stderr
    (d / "authorized_keys").write_text("".join(
        (d / f"{name}.pub").read_text()
        for name in ("id", "revoked", *(f"user_{k}" for k in USER_KEYS))))
    (d / "principals").mkdir()
    (d / "principals" / USER).write_text("# the ops team\nops\n")
    hosts = "".join(f"HostKey {d}/host_{n}\nHostCertificate {d}/host_{n}-cert.pub\n"
                    for n in HOST_KEYS)
    subsystem = f"Subsystem sftp {SFTP_SERVER}\n" if os.path.exists(SFTP_SERVER) else ""
    config = (
        f"KexAlgorithms {','.join(METHODS)}\nCiphers {','.join(CIPHERS)}\n"
        f"MACs {','.join(MACS)}\nHostKeyAlgorithms {','.join(DEFAULT_HOST_KEY_ALGORITHMS)}\n"
        + hosts + f"AuthorizedKeysFile {d}/authorized_keys\n"
        f"TrustedUserCAKeys {d / 'user_ca.pub'}\nRevokedKeys {d / 'revoked.krl'}\n"
        + subsystem + "LogLevel VERBOSE\nLoginGraceTime 30\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"Match Address 127.0.0.2\n  AuthorizedPrincipalsFile {d}/principals/%u\n"
        "Match Address 127.0.0.3\n  PasswordAuthentication yes\n"
        "  KbdInteractiveAuthentication yes\n")
    test_user = _make_user() if ROOT and shutil.which("useradd") else None
    server: PysshdServer | None = None
    try:
        server = start_pysshd(d, config)
        host_keys = {n: load_public(str(d / f"host_{n}.pub"))[0] for n in HOST_KEYS}
        yield Env(d, server, host_keys, load_public(str(d / "host_ca.pub"))[0], test_user)
    finally:
        if server is not None:
            server.stop()
        if test_user is not None:
            run(["userdel", "-r", test_user])


async def _session(env: Env, *, command: str = "echo pyssh-ok", keys: Sequence[Signer] = (),
                   prefs: Preferences | None = None, alg: str = "ssh-ed25519",
                   user: str = USER, source: str | None = None, password: str | None = None,
                   auth_options: AuthOptions | None = None) -> tuple[object, RunResult]:
    conn = await connect("127.0.0.1", env.server.port, username=user, keys=keys,
                         known_host_check=env.check_host_key(alg),  # type: ignore[arg-type]
                         config=TransportConfig(algorithms=prefs or Preferences(
                             host_key=(alg,))),
                         local_address=source, password=password,
                         auth_options=auth_options, timeout=30)
    try:
        result = await conn.run(command)
        return conn.transport.kex.algorithms if conn.transport.kex else None, result
    finally:
        await conn.close()


def session(env: Env, **kwargs: object) -> tuple[object, RunResult]:
    try:
        return asyncio.run(_session(env, **kwargs))  # type: ignore[arg-type]
    except BaseException:
        print(env.log()[-4000:])
        raise


# -- the algorithm matrix ---------------------------------------------------------------


def test_every_algorithm_is_covered() -> None:
    assert {c.kex for c in COMBOS} == set(METHODS)
    assert "mlkem768x25519-sha256" in METHODS
    assert {c.cipher for c in COMBOS} == set(CIPHERS)
    assert {(c.cipher, c.mac) for c in COMBOS if not CIPHERS[c.cipher].aead} \
        == {(c, m) for c in CIPHERS if not CIPHERS[c].aead for m in MACS}
    assert {c.host_key for c in COMBOS} == set(DEFAULT_HOST_KEY_ALGORITHMS)
    assert any(h.endswith(CERT) for h in DEFAULT_HOST_KEY_ALGORITHMS)


@pytest.mark.parametrize("combo", COMBOS, ids=str)
def test_algorithm_matrix(env: Env, combo: Combo) -> None:
    prefs = Preferences(kex=(combo.kex,), host_key=(combo.host_key,), ciphers=(combo.cipher,),
                        macs=(combo.mac,) if combo.mac else tuple(MACS))
    algs, result = session(env, keys=[env.user_key("id")], prefs=prefs, alg=combo.host_key)
    assert (result.exit_status, result.stdout) == (0, b"pyssh-ok\n")
    assert (algs.kex, algs.host_key, algs.cipher_c2s, algs.cipher_s2c,  # type: ignore[attr-defined]
            algs.mac_c2s, algs.mac_s2c) == (  # type: ignore[attr-defined]
        combo.kex, combo.host_key, combo.cipher, combo.cipher, combo.mac, combo.mac)


def test_delayed_compression(env: Env) -> None:
    prefs = Preferences(host_key=("ssh-ed25519",), compression=("zlib@openssh.com",))
    algs, result = session(env, keys=[env.user_key("id")], prefs=prefs,
                           command="head -c 200000 /dev/zero | od | tail -1")
    assert (result.exit_status, result.stdout) == (0, b"0606500\n")
    assert algs.compression_c2s == algs.compression_s2c == "zlib@openssh.com"  # type: ignore[attr-defined]


# -- user authentication ------------------------------------------------------------------


@pytest.mark.parametrize("name", USER_KEYS)
def test_every_user_key_type(env: Env, name: str) -> None:
    key = env.user_key(f"user_{name}")
    _, result = session(env, keys=[key], command="echo key-ok")
    assert (result.exit_status, result.stdout) == (0, b"key-ok\n")
    assert f"Accepted publickey for {USER} from 127.0.0.1 port " in env.log()
    assert f"{key.public.type_label} {fingerprint(key.public)}" in env.log()


def test_certificate_via_trusted_user_ca_keys(env: Env) -> None:
    _, result = session(env, keys=[env.certified("certified")], command="echo cert-ok")
    assert (result.exit_status, result.stdout) == (0, b"cert-ok\n")
    assert 'Accepted certificate ID "trusted-ca" (serial 0) signed by ED25519 CA' in env.log()
    # the plain key of the certificate is in no authorized_keys
    with pytest.raises(SshError, match="Permission denied"):
        session(env, keys=[env.user_key("certified")])


def test_certificate_via_authorized_principals_file(env: Env) -> None:
    _, result = session(env, keys=[env.certified("principal")], source="127.0.0.2",
                        command="echo principal-ok")
    assert (result.exit_status, result.stdout) == (0, b"principal-ok\n")
    assert 'Accepted certificate ID "via-principals"' in env.log()
    # from elsewhere no AuthorizedPrincipalsFile applies: the user name is no principal
    with pytest.raises(SshError, match="Permission denied"):
        session(env, keys=[env.certified("principal")])


def test_key_revoked_by_krl_refused(env: Env) -> None:
    with pytest.raises(SshError, match="Permission denied"):
        session(env, keys=[env.user_key("revoked")])
    assert f"revoked by file {env.directory / 'revoked.krl'}" in env.log()


@pytest.mark.parametrize("method", ["password", "keyboard-interactive"])
def test_password_methods(env: Env, method: str) -> None:
    if env.test_user is None:
        pytest.skip("needs root: creates a user with a password (useradd, chpasswd)")
    options = AuthOptions(preferred=(method,), pubkey=False, password=method == "password",
                          kbd_interactive=method != "password", password_prompts=1)
    _, result = session(env, user=env.test_user, source="127.0.0.3", password=PASSWORD,
                        auth_options=options, command="id -un")
    assert (result.exit_status, result.stdout) == (0, f"{env.test_user}\n".encode())
    assert f"Accepted {method} for {env.test_user} from 127.0.0.3" in env.log()
    with pytest.raises(SshError, match="Permission denied"):
        session(env, user=env.test_user, source="127.0.0.3", password="wrong",
                auth_options=options)
    assert f"Failed {method} for {env.test_user} from 127.0.0.3" in env.log()
    # outside the Match block passwords are off
    with pytest.raises(SshError, match="Permission denied"):
        session(env, user=env.test_user, password=PASSWORD, auth_options=options)


# -- sessions -----------------------------------------------------------------------------


def test_exec_exit_status_and_stderr(env: Env) -> None:
    _, result = session(env, keys=[env.user_key("id")],
                        command="echo out; echo err >&2; exit 7")
    assert result == RunResult(7, b"out\n", b"err\n")


def pyssh_args(env: Env, *args: str) -> list[str]:
    return [*PYSSH, "-F", "/dev/null", "-p", str(env.server.port), "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-i", str(env.directory / "id"), *args]


def client_env(env: Env) -> dict[str, str]:
    (env.directory / "client").mkdir(exist_ok=True)
    return {**pysshd_env(), "HOME": str(env.directory / "client"), "TERM": "xterm-pyssh"}


def on_pty(cmd: list[str], environ: dict[str, str], typed: bytes = b"",
           timeout: float = 30) -> tuple[int, bytes]:
    """Run ``cmd`` on a new pty as if in a terminal; type ``typed`` once it prints.
    Returns the exit status and everything it wrote."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.chdir(REPO_ROOT)
            os.execve(cmd[0], cmd, environ)
        finally:
            os._exit(127)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                output += data
                if typed and output:
                    os.write(fd, typed)
                    typed = b""
        else:
            raise AssertionError(f"pyssh did not finish: {output!r}")
        _, status = os.waitpid(pid, 0)
        pid = 0
        return os.waitstatus_to_exitcode(status), output
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def test_pty_command_through_pyssh_tt(env: Env) -> None:
    code, out = on_pty(pyssh_args(env, "-tt", f"{USER}@127.0.0.1",
                                  "tty; echo T=$TERM; exit 5"), client_env(env))
    lines = out.decode(errors="replace").split("\r\n")
    assert code == 5, out
    assert lines[0].startswith("/dev/pts/"), out
    assert lines[1] == "T=xterm-pyssh", out


def test_shell_on_a_pty(env: Env) -> None:
    code, out = on_pty(pyssh_args(env, "-tt", f"{USER}@127.0.0.1"), client_env(env),
                       typed=b"echo shell-$((6*7)); exit 4\r")
    assert code == 4, out
    assert b"shell-42\r\n" in out


def test_no_pty_without_t(env: Env) -> None:
    done = run(pyssh_args(env, f"{USER}@127.0.0.1", "tty"), env=client_env(env))
    assert (done.returncode, done.stdout) == (1, "not a tty\n"), done.stderr


def test_sftp_subsystem_through_pyssh_s(env: Env) -> None:
    """SSH_FXP_INIT through ``pyssh -s``: sftp-server answers SSH_FXP_VERSION. stdin
    stays open until the answer is read (sftp-server exits at EOF before replying)."""
    if not os.path.exists(SFTP_SERVER):
        pytest.skip(f"no {SFTP_SERVER}")
    init = Writer().byte(1).uint32(3).getvalue()  # SSH_FXP_INIT, version 3
    proc = subprocess.Popen(pyssh_args(env, "-s", f"{USER}@127.0.0.1", "sftp"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=client_env(env), cwd=REPO_ROOT,
                            start_new_session=True)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(Writer().string(init).getvalue())
        proc.stdin.flush()
        length = Reader(proc.stdout.read(4)).uint32()
        body = Reader(proc.stdout.read(length))
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        stop_process(proc)
    assert (body.byte(), body.uint32()) == (2, 3)  # SSH_FXP_VERSION 3
    extensions = []
    while body.remaining:
        extensions.append(body.text())
        body.string()
    assert "posix-rename@openssh.com" in extensions
