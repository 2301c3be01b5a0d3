"""ssh-audit (PyPI ``ssh-audit``, a test-only dependency) against pysshd's defaults.

pysshd with no algorithm settings and the usual host keys (Ed25519, 3072-bit RSA) draws
no [fail] at all, and no [warn] except the post-quantum note on the classical key
exchanges it keeps for older clients. The same audit of the installed sshd with its
own defaults is run too, to show the check bites (OpenSSH 9.2 gets [fail] for its
NIST-curve key exchanges and host key, and for hmac-sha1).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.kex.kexinit import SERVER_DEFAULT_KEX, SERVER_DEFAULT_MACS
from tests.helpers import run, tool_path
from tests.interop.pysshd import PysshdServer, keygen, start_pysshd
from tests.interop.sshd import start_sshd

SECTIONS = ("kex", "key", "enc", "mac")
POST_QUANTUM = "does not provide protection against post-quantum attacks"


def audit(port: int) -> dict[str, object]:
    if importlib.util.find_spec("ssh_audit") is None:
        pytest.skip("ssh-audit is not installed (pip install ssh-audit: a test extra)")
    done = run([sys.executable, "-m", "ssh_audit", "--skip-rate-test", "-j", "-t", "20",
                "-p", str(port), "127.0.0.1"], timeout=120)
    assert done.stdout.strip(), done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return report


def notes(report: dict[str, object], level: str) -> list[str]:
    """Every ``level`` ("fail"/"warn") note, as "section algorithm: text"."""
    found: list[str] = []
    for section in SECTIONS:
        entries = report.get(section) or []
        assert isinstance(entries, list)
        for entry in entries:
            for text in entry.get("notes", {}).get(level, []):
                found.append(f"{section} {entry['algorithm']}: {text}")
    return found


@pytest.fixture(scope="module")
def pysshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PysshdServer]:
    d = tmp_path_factory.mktemp("audit")
    keygen("-q", "-t", "ed25519", "-N", "", "-f", d / "host_ed25519")
    keygen("-q", "-t", "rsa", "-N", "", "-f", d / "host_rsa")  # ssh-keygen's 3072 bits
    srv = start_pysshd(d, f"HostKey {d / 'host_ed25519'}\nHostKey {d / 'host_rsa'}\n")
    yield srv
    srv.stop()


def test_pysshd_defaults_pass_ssh_audit(pysshd: PysshdServer) -> None:
    report = audit(pysshd.port)
    assert notes(report, "fail") == []
    warnings = notes(report, "warn")
    assert [w for w in warnings if not w.endswith(POST_QUANTUM)] == []
    assert report.get("cves") == []
    algorithms = {section: [e["algorithm"] for e in report[section]]  # type: ignore[index]
                  for section in SECTIONS}
    # Post-quantum first; strict kex (the Terrapin fix) and ext-info advertised.
    assert algorithms["kex"][0] == "mlkem768x25519-sha256"
    assert "kex-strict-s-v00@openssh.com" in algorithms["kex"]
    assert not any("nistp" in a for s in SECTIONS for a in algorithms[s])
    # The key exchanges warned about are exactly the classical ones.
    assert {w.split()[1].rstrip(":") for w in warnings} == {
        a for a in algorithms["kex"]
        if a.startswith(("curve25519", "diffie-hellman", "ecdh"))}


def test_installed_sshd_defaults_do_not(tmp_path: Path) -> None:
    """The same audit of OpenSSH's own defaults finds [fail]s: the test above can fail."""
    for name, kind in (("host_ecdsa", "ecdsa"), ("host_ed25519", "ed25519")):
        keygen("-q", "-t", kind, "-N", "", "-f", tmp_path / name)
    server = start_sshd(tmp_path / "sshd", f"HostKey {tmp_path / 'host_ecdsa'}\n",
                        host_key=tmp_path / "host_ed25519")
    try:
        report = audit(server.port)
    finally:
        server.stop()
    fails = notes(report, "fail")
    print("ssh-audit on the installed sshd's defaults:", *fails, sep="\n  ")
    assert fails


@pytest.mark.parametrize(("option", "refusal", "offer"), [
    ("KexAlgorithms=ecdh-sha2-nistp256,diffie-hellman-group14-sha1",
     "no matching key exchange method found", ",".join(SERVER_DEFAULT_KEX)),
    ("HostKeyAlgorithms=ecdsa-sha2-nistp256,ssh-rsa", "no matching host key type found",
     "ssh-ed25519,rsa-sha2-512,rsa-sha2-256"),
    ("MACs=hmac-sha1,hmac-sha2-256", "no matching MAC found", ",".join(SERVER_DEFAULT_MACS)),
])
def test_real_ssh_meets_the_default_offer(pysshd: PysshdServer, tmp_path: Path, option: str,
                                          refusal: str, offer: str) -> None:
    """What the defaults leave out is really not offered (the real ssh quotes our offer)."""
    options = [option] + (["Ciphers=aes128-ctr"] if option.startswith("MACs") else [])
    done = ssh_v(pysshd.port, tmp_path, *options)
    assert done.returncode == 255
    assert f"{refusal}. Their offer: {offer}" in done.stderr, done.stderr


def test_real_ssh_default_negotiation(pysshd: PysshdServer, tmp_path: Path) -> None:
    done = ssh_v(pysshd.port, tmp_path)
    best = "mlkem768x25519-sha256" if "mlkem768x25519-sha256" in run(
        [tool_path("ssh"), "-Q", "kex"]).stdout.split() else "curve25519-sha256"
    assert f"kex: algorithm: {best}\r\n" in done.stderr, done.stderr
    assert "kex: host key algorithm: ssh-ed25519\r\n" in done.stderr


def ssh_v(port: int, home: Path, *options: str) -> subprocess.CompletedProcess[str]:
    cmd = [tool_path("ssh"), "-v", "-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes",
           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
           "-o", "IdentityFile=none", "-o", "ConnectTimeout=20"]
    for option in options:
        cmd += ["-o", option]
    return run([*cmd, "nobody@127.0.0.1", "true"],
               env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, timeout=60)
