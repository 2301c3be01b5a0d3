"""Certificates signed by pykeygen, judged by a real sshd and a real ssh.

A user certificate for root logs in through TrustedUserCAKeys; one for other principals,
an expired one and one with no principals are refused, and sshd's reason is the one
keytools.cert_check gives. A host certificate is accepted by ssh through
``@cert-authority`` in known_hosts and refused without that line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from keytools.cert_check import CertificateRefused, check_certificate
from keytools.certificate import Certificate
from keytools.public import parse_public_line
from tests.helpers import run, tool_path
from tests.interop.sshd import SshdServer

PYKEYGEN = [sys.executable, "-m", "keytools.cli.pykeygen"]


def pykeygen(*args: str | Path) -> None:
    done = run([*PYKEYGEN, *args])
    assert done.returncode == 0, done.stderr


def _keypair(path: Path) -> Path:
    made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", path])
    assert made.returncode == 0, made.stderr
    return path


def _user_cert(ca: Path, key: Path, name: str, *args: str) -> Path:
    """Sign a copy of ``key`` as NAME (so every certificate has its own file)."""
    copy = key.with_name(name)
    copy.write_bytes(key.read_bytes())
    copy.chmod(0o600)
    copy.with_name(f"{name}.pub").write_bytes(key.with_name(key.name + ".pub").read_bytes())
    pykeygen("-q", "-s", ca, "-I", name, *args, copy.with_name(f"{name}.pub"))
    return copy


def _reason(cert_path: Path, ca_pub: Path) -> str:
    cert, _ = parse_public_line(cert_path.read_text())
    ca, _ = parse_public_line(ca_pub.read_text())
    assert isinstance(cert, Certificate)
    with pytest.raises(CertificateRefused) as exc:
        check_certificate(cert, principal="root", host=False, ca_keys=[ca],
                          source_address="127.0.0.1")
    return str(exc.value)


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    """A CA made by pykeygen itself."""
    path = tmp_path / "ca"
    pykeygen("-q", "-t", "ed25519", "-N", "", "-C", "test CA", "-f", path)
    return path


def test_sshd_trusts_user_certificates_from_pykeygen(
        tmp_path: Path, ca: Path, sshd_factory: Callable[..., SshdServer]) -> None:
    key = _keypair(tmp_path / "user")
    good = _user_cert(ca, key, "good", "-n", "alice,root", "-V", "-5m:+1h")
    others = _user_cert(ca, key, "others", "-n", "alice,bob", "-V", "-5m:+1h")
    expired = _user_cert(ca, key, "expired", "-n", "root", "-V", "20200101:20200102")
    nobody = _user_cert(ca, key, "nobody", "-V", "-5m:+1h")
    server = sshd_factory(f"TrustedUserCAKeys {ca}.pub")

    ok = server.ssh("echo", "hello", identity=good, certificate=Path(f"{good}-cert.pub"))
    assert ok.returncode == 0, ok.stderr + server.log_text()
    assert ok.stdout == "hello\n"
    for refused in (others, expired, nobody):
        cert = Path(f"{refused}-cert.pub")
        done = server.ssh("true", identity=refused, certificate=cert)
        assert done.returncode == 255, refused.name
        reason = _reason(cert, Path(f"{ca}.pub"))
        assert reason in server.log_text(), (reason, server.log_text())
    # the plain key alone is not enough: only the certificate made the login work
    assert server.ssh("true", identity=key).returncode == 255


def test_ssh_trusts_host_certificates_from_pykeygen(
        tmp_path: Path, ca: Path, sshd_factory: Callable[..., SshdServer]) -> None:
    host_key = _keypair(tmp_path / "ssh_host_ed25519_key")
    pykeygen("-q", "-s", ca, "-h", "-I", "test host", "-n", "127.0.0.1,localhost",
             "-V", "-5m:+1h", f"{host_key}.pub")
    wrong_host = _keypair(tmp_path / "wrong_host_key")
    pykeygen("-q", "-s", ca, "-h", "-I", "elsewhere", "-n", "*.example.com",
             f"{wrong_host}.pub")
    user = _user_cert(ca, _keypair(tmp_path / "user"), "login", "-n", "root")
    trusted = f"TrustedUserCAKeys {ca}.pub"
    server = sshd_factory(trusted, host_key=host_key,
                          host_certificate=Path(f"{host_key}-cert.pub"))
    ca_line = f"@cert-authority [127.0.0.1]:{server.port} {Path(f'{ca}.pub').read_text()}"
    known = tmp_path / "known_hosts"
    known.write_text(ca_line)
    login = {"identity": user, "certificate": Path(f"{user}-cert.pub"), "known_hosts": known}

    ok = server.ssh("echo", "certified", **login)  # type: ignore[arg-type]
    assert ok.returncode == 0, ok.stderr + server.log_text()
    assert ok.stdout == "certified\n"

    known.write_text("")
    refused = server.ssh("true", **login)  # type: ignore[arg-type]
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr

    # a certificate from the right CA but for other names is not accepted either
    other = sshd_factory(trusted, host_key=wrong_host,
                         host_certificate=Path(f"{wrong_host}-cert.pub"))
    known.write_text(ca_line.replace(f":{server.port} ", f":{other.port} "))
    assert other.ssh("true", **login).returncode == 255  # type: ignore[arg-type]
