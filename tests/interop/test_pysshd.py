"""The real OpenSSH ``ssh`` logs in to pysshd (unprivileged mode, the current user).

One pysshd per module, started as a subprocess on 127.0.0.1 with a temporary config
and host key and stopped by pid in the fixture's finaliser. pysshd reads
authorized_keys at every attempt (as sshd does), so each test writes the file it needs.
Keys and the certificate come from the real ssh-keygen, the KRL from pykeygen -k.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, TESTDATA, private_copy, run, stop_process, tool_path
from tests.interop.sshd import free_port, sshd_path

PYSSHD = [sys.executable, "-m", "protocol.sshd_main"]
PYKEYGEN = [sys.executable, "-m", "keytools.cli.pykeygen"]
USER = getpass.getuser()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def _keygen(*args: str | Path) -> None:
    done = run([tool_path("ssh-keygen"), *map(str, args)])
    assert done.returncode == 0, done.stderr


@dataclass
class PysshdServer:
    directory: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def authorized_keys(self) -> Path:
        return self.directory / "authorized_keys"

    def key(self, name: str) -> Path:
        return self.directory / name

    def authorize(self, *lines: str) -> None:
        self.authorized_keys.write_text("".join(line + "\n" for line in lines))

    def pub(self, name: str) -> str:
        return self.key(f"{name}.pub").read_text().strip()

    def ssh(self, *remote: str, identity: str = "id", certificate: str | None = None,
            options: tuple[str, ...] = (), user: str = USER,
            extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        client = self.directory / "client"
        cmd = [tool_path("ssh"), "-F", "/dev/null", "-p", str(self.port),
               "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20",
               "-o", f"UserKnownHostsFile={client / 'known_hosts'}",
               "-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR",
               "-i", str(self.key(identity))]
        if certificate is not None:
            cmd += ["-o", f"CertificateFile={self.key(certificate)}"]
        for option in options:
            cmd += ["-o", option]
        env = _env()
        env["HOME"] = str(client)
        return run([*cmd, *extra, f"{user}@127.0.0.1", *remote], env=env, timeout=60)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PysshdServer]:
    d = tmp_path_factory.mktemp("pysshd")
    (d / "client").mkdir(mode=0o700)
    for name in ("host", "id", "other", "revoked", "ca", "certified", "forced", "elsewhere"):
        _keygen("-q", "-t", "ed25519", "-N", "", "-C", name, "-f", d / name)
    _keygen("-q", "-s", d / "ca", "-I", "pysshd-test", "-n", USER, "-V", "-5m:+1h",
            d / "certified.pub")
    _keygen("-q", "-s", d / "ca", "-I", "forced", "-n", USER, "-O",
            "force-command=echo from-cert", "-O", "source-address=127.0.0.0/8", d / "forced.pub")
    _keygen("-q", "-s", d / "ca", "-I", "elsewhere", "-n", USER, "-O",
            "source-address=10.0.0.0/8", d / "elsewhere.pub")
    krl = run([*PYKEYGEN, "-k", "-f", str(d / "revoked.krl"), str(d / "revoked.pub")],
              env=_env())
    assert krl.returncode == 0, krl.stderr
    port = free_port()
    config = d / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {d / 'host'}\n"
        f"PidFile {d / 'pysshd.pid'}\nAuthorizedKeysFile {d}/authorized_keys\n"
        f"TrustedUserCAKeys {d / 'ca.pub'}\nRevokedKeys {d / 'revoked.krl'}\n"
        "LogLevel VERBOSE\nLoginGraceTime 30\nAcceptEnv LC_* FOO\n")
    log = d / "pysshd.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen([*PYSSHD, "-f", str(config), "-D", "-e"], stdout=log_file,
                                stderr=log_file, stdin=subprocess.DEVNULL, env=_env())
    srv = PysshdServer(d, port, proc, log)
    deadline = time.monotonic() + 20
    while not (d / "pysshd.pid").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            srv.stop()
            pytest.fail(f"pysshd did not start: {srv.log_text()}")
        time.sleep(0.05)
    yield srv
    srv.stop()


def test_exec_echo(server: PysshdServer) -> None:
    server.authorize(server.pub("id"))
    done = server.ssh("echo hello")
    assert (done.returncode, done.stdout) == (0, "hello\n"), done.stderr + server.log_text()


def test_exit_status_and_stderr(server: PysshdServer) -> None:
    server.authorize(server.pub("id"))
    done = server.ssh("echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_stdin_reaches_the_command(server: PysshdServer) -> None:
    server.authorize(server.pub("id"))
    client = server.directory / "client"
    cmd = [tool_path("ssh"), "-F", "/dev/null", "-p", str(server.port), "-o", "BatchMode=yes",
           "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={client / 'known_hosts'}",
           "-o", "StrictHostKeyChecking=accept-new", "-i", str(server.key("id")),
           f"{USER}@127.0.0.1", "wc -c"]
    done = run(cmd, input=b"x" * 100_000, env={**_env(), "HOME": str(client)})
    assert (done.returncode, done.stdout.strip()) == (0, "100000"), done.stderr


def test_env_requests_follow_accept_env(server: PysshdServer) -> None:
    server.authorize(server.pub("id"))
    done = server.ssh("echo $FOO-$LC_X-$BAR-$USER", options=("SetEnv=FOO=1 LC_X=2 BAR=3",))
    assert (done.returncode, done.stdout) == (0, f"1-2--{USER}\n"), done.stderr


@pytest.mark.parametrize("alg", ["rsa-sha2-256", "rsa-sha2-512"])
def test_rsa_sha2_signatures(server: PysshdServer, alg: str) -> None:
    key = private_copy("sshkey/rsa_1", server.directory)
    server.authorize((TESTDATA / "sshkey" / "rsa_1.pub").read_text().strip())
    done = server.ssh("echo rsa", identity=key.name, options=(f"PubkeyAcceptedAlgorithms={alg}",))
    assert (done.returncode, done.stdout) == (0, "rsa\n"), done.stderr + server.log_text()


def test_unknown_key_refused(server: PysshdServer) -> None:
    server.authorize(server.pub("id"))
    done = server.ssh("true", identity="other")
    assert done.returncode == 255
    assert "Permission denied (publickey)." in done.stderr


def test_unknown_user_refused_like_a_bad_key(server: PysshdServer) -> None:
    server.authorize(server.pub("id"))
    done = server.ssh("true", user="no-such-user-pysshd")
    assert done.returncode == 255
    assert "Permission denied (publickey)." in done.stderr
    assert "Invalid user no-such-user-pysshd from 127.0.0.1" in server.log_text()


def test_max_auth_tries(server: PysshdServer, tmp_path: Path) -> None:
    server.authorize(server.pub("id"))
    extra: list[str] = []
    for n in range(6):  # sshd's default MaxAuthTries
        _keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / f"k{n}")
        extra += ["-i", str(tmp_path / f"k{n}")]
    done = server.ssh("true", identity="other", extra=tuple(extra))
    assert done.returncode == 255
    assert "Too many authentication failures" in done.stderr
    assert "maximum authentication attempts exceeded" in server.log_text()


def test_forced_command(server: PysshdServer) -> None:
    server.authorize(f'command="echo forced; echo $SSH_ORIGINAL_COMMAND" {server.pub("id")}')
    done = server.ssh("echo asked")
    assert (done.returncode, done.stdout) == (0, "forced\necho asked\n"), done.stderr


def test_from_option_refuses_other_networks(server: PysshdServer) -> None:
    server.authorize(f'from="10.0.0.0/8" {server.pub("id")}')
    done = server.ssh("true")
    assert done.returncode == 255
    assert "Permission denied (publickey)." in done.stderr
    assert "not from a permitted host" in server.log_text()
    server.authorize(f'restrict,from="10.0.0.0/8,127.0.0.1" {server.pub("id")}')
    assert server.ssh("true").returncode == 0


def test_certificate_from_trusted_ca(server: PysshdServer) -> None:
    server.authorize()
    done = server.ssh("echo cert", identity="certified", certificate="certified-cert.pub")
    assert (done.returncode, done.stdout) == (0, "cert\n"), done.stderr + server.log_text()
    # without the certificate the same key is not authorized anywhere
    bare = server.ssh("true", identity="certified", certificate="certified.pub")
    assert bare.returncode == 255


def test_certificate_options_honoured(server: PysshdServer) -> None:
    server.authorize()
    forced = server.ssh("echo asked", identity="forced", certificate="forced-cert.pub")
    assert (forced.returncode, forced.stdout) == (0, "from-cert\n"), forced.stderr
    elsewhere = server.ssh("true", identity="elsewhere", certificate="elsewhere-cert.pub")
    assert elsewhere.returncode == 255
    assert "not from a permitted source address" in server.log_text()


def test_cert_authority_line(server: PysshdServer) -> None:
    server.authorize(f'cert-authority,principals="nobody" {server.pub("ca")}')
    # TrustedUserCAKeys still accepts it; the authorized_keys line alone must not
    done = server.ssh("echo ok", identity="certified", certificate="certified-cert.pub")
    assert done.returncode == 0
    assert "certificate has no matching principals" in server.log_text()
    server.authorize(f'cert-authority,principals="nobody,{USER}" {server.pub("ca")}')
    done = server.ssh("echo ok", identity="certified", certificate="certified-cert.pub")
    assert done.returncode == 0
    assert 'Accepted certificate ID "pysshd-test" (serial 0) signed by ED25519 CA ' \
        in server.log_text()
    assert f"via {server.authorized_keys}:1" in server.log_text()


def test_revoked_key_refused(server: PysshdServer) -> None:
    server.authorize(server.pub("revoked"), server.pub("id"))
    done = server.ssh("true", identity="revoked")
    assert done.returncode == 255
    assert "Permission denied (publickey)." in done.stderr
    assert "revoked by file" in server.log_text()


def test_config_test_mode_reports_bad_line(tmp_path: Path) -> None:
    _keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "host")
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {tmp_path / 'host'}\nPort 2222\nFrobnicate yes\n")
    ours = run([*PYSSHD, "-t", "-f", str(config)], env=_env())
    assert ours.returncode == 255
    assert f"{config}: line 3: Bad configuration option: Frobnicate" in ours.stderr
    assert f"{config}: terminating, 1 bad configuration options" in ours.stderr
    theirs = run([sshd_path(), "-t", "-f", str(config)])
    assert theirs.returncode == ours.returncode
    assert theirs.stderr == ours.stderr
