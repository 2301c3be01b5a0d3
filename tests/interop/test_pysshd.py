"""The real OpenSSH ``ssh`` logs in to pysshd (unprivileged mode, the current user).

One pysshd per module, started as a subprocess on 127.0.0.1 with a temporary config
and host key and stopped by pid in the fixture's finaliser. pysshd reads
authorized_keys at every attempt (as sshd does), so each test writes the file it needs.
Keys and the certificate come from the real ssh-keygen, the KRL from pykeygen -k.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import TESTDATA, private_copy, run, tool_path
from tests.interop.pysshd import (
    PYKEYGEN,
    PYSSHD,
    USER,
    PysshdServer,
    keygen,
    pysshd_env,
    start_pysshd,
)
from tests.interop.sshd import sshd_path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PysshdServer]:
    d = tmp_path_factory.mktemp("pysshd")
    for name in ("host", "id", "other", "revoked", "ca", "certified", "forced", "elsewhere"):
        keygen("-q", "-t", "ed25519", "-N", "", "-C", name, "-f", d / name)
    keygen("-q", "-s", d / "ca", "-I", "pysshd-test", "-n", USER, "-V", "-5m:+1h",
           d / "certified.pub")
    keygen("-q", "-s", d / "ca", "-I", "forced", "-n", USER, "-O",
           "force-command=echo from-cert", "-O", "source-address=127.0.0.0/8", d / "forced.pub")
    keygen("-q", "-s", d / "ca", "-I", "elsewhere", "-n", USER, "-O",
           "source-address=10.0.0.0/8", d / "elsewhere.pub")
    krl = run([*PYKEYGEN, "-k", "-f", str(d / "revoked.krl"), str(d / "revoked.pub")],
              env=pysshd_env())
    assert krl.returncode == 0, krl.stderr
    srv = start_pysshd(d, f"HostKey {d / 'host'}\nAuthorizedKeysFile {d}/authorized_keys\n"
                          f"TrustedUserCAKeys {d / 'ca.pub'}\nRevokedKeys {d / 'revoked.krl'}\n"
                          "LogLevel VERBOSE\nLoginGraceTime 30\nAcceptEnv LC_* FOO\n"
                          "PasswordAuthentication no\nKbdInteractiveAuthentication no\n")
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
    done = run(cmd, input=b"x" * 100_000, env={**pysshd_env(), "HOME": str(client)})
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


@pytest.mark.parametrize("bits", ["256", "384", "521"])
def test_ecdsa_user_keys(server: PysshdServer, bits: str) -> None:
    """The real ssh logs in with each ECDSA curve (pysshd accepts NIST user keys even
    though its host key and kex defaults leave the NIST curves out)."""
    name = f"ecdsa{bits}"
    if not server.key(name).exists():
        keygen("-q", "-t", "ecdsa", "-b", bits, "-N", "", "-C", name, "-f", server.key(name))
    server.authorize(server.pub(name))
    done = server.ssh(f"echo {name}", identity=name)
    assert (done.returncode, done.stdout) == (0, f"{name}\n"), done.stderr + server.log_text()


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
        keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / f"k{n}")
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
    keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "host")
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {tmp_path / 'host'}\nPort 2222\nFrobnicate yes\n")
    ours = run([*PYSSHD, "-t", "-f", str(config)], env=pysshd_env())
    assert ours.returncode == 255
    assert f"{config}: line 3: Bad configuration option: Frobnicate" in ours.stderr
    assert f"{config}: terminating, 1 bad configuration options" in ours.stderr
    theirs = run([sshd_path(), "-t", "-f", str(config)])
    assert theirs.returncode == ours.returncode
    assert theirs.stderr == ours.stderr
