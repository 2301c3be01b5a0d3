"""A real sshd enforces a KRL written by pykeygen (RevokedKeys).

One server trusts both an authorized_keys file and a user CA; the KRL pykeygen writes
revokes one plain key explicitly and one certificate by serial, among 10,000 other
serials (so sshd reads bitmap and list subsections of ours). The other key and the other
certificate must still log in. Certificates are signed with the real ssh-keygen.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from tests.helpers import run, tool_path
from tests.interop.sshd import SshdServer

PYKEYGEN = [sys.executable, "-m", "keytools.cli.pykeygen"]


def _keygen(*args: str) -> None:
    done = run([tool_path("ssh-keygen"), *args])
    assert done.returncode == 0, done.stderr


def test_sshd_refuses_keys_revoked_by_our_krl(
        tmp_path: Path, sshd_factory: Callable[..., SshdServer]) -> None:
    for name in ("good", "bad", "ca", "certok", "certbad"):
        _keygen("-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(tmp_path / name))
    for name, serial in (("certok", "10"), ("certbad", "11")):
        _keygen("-q", "-s", str(tmp_path / "ca"), "-I", f"id-{name}", "-n", "root",
                "-z", serial, str(tmp_path / f"{name}.pub"))
    authorized = tmp_path / "authorized_keys"
    authorized.write_text((tmp_path / "good.pub").read_text() + (tmp_path / "bad.pub").read_text())
    spec = tmp_path / "revoke.spec"
    serials = [s for s in range(3, 30_001, 3) if s != 10] + [11]
    spec.write_text("".join(f"serial: {s}\n" for s in serials) +
                    f"key: {(tmp_path / 'bad.pub').read_text()}")
    krl = tmp_path / "revoked.krl"
    made = run([*PYKEYGEN, "-k", "-f", str(krl), "-s", str(tmp_path / "ca.pub"), str(spec)])
    assert made.returncode == 0, made.stderr

    server = sshd_factory(f"AuthorizedKeysFile {authorized}\n"
                          f"TrustedUserCAKeys {tmp_path / 'ca.pub'}\n"
                          f"RevokedKeys {krl}\n")
    ok = server.ssh("echo", "in", identity=tmp_path / "good")
    assert (ok.returncode, ok.stdout) == (0, "in\n"), ok.stderr + server.log_text()
    refused = server.ssh("true", identity=tmp_path / "bad")
    assert refused.returncode == 255
    cert_ok = server.ssh("echo", "cert", identity=tmp_path / "certok",
                         certificate=tmp_path / "certok-cert.pub")
    assert (cert_ok.returncode, cert_ok.stdout) == (0, "cert\n"), \
        cert_ok.stderr + server.log_text()
    cert_bad = server.ssh("true", identity=tmp_path / "certbad",
                          certificate=tmp_path / "certbad-cert.pub")
    assert cert_bad.returncode == 255
    log = server.log_text()
    assert log.count("revoked by file") >= 2, log
