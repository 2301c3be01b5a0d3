"""check_host_key agrees with the real ssh on the same known_hosts file and server.

A real sshd on 127.0.0.1 presents an Ed25519 host key and a host certificate for it;
each known_hosts variant is given to the real ssh (strict checking) and to
keytools.known_hosts.check_host_key. "Permission denied" from ssh means the host key
was accepted (no client key is offered); "Host key verification failed" that it was not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keytools.known_hosts import HostKeyStatus, check_host_key
from keytools.known_hosts_edit import add_host_key
from keytools.public import PublicKey, parse_public_line
from tests.helpers import run, tool_path
from tests.interop.sshd import SshdServer, start_sshd

ACCEPTED = (HostKeyStatus.MATCH, HostKeyStatus.CA_MATCH)


def _key(path: Path) -> PublicKey:
    return parse_public_line(path.read_text())[0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, SshdServer]]:
    keygen = tool_path("ssh-keygen")
    d = tmp_path_factory.mktemp("khssh")
    for name in ("ca", "hostkey", "other", "badcert"):
        made = run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)])
        assert made.returncode == 0, made.stderr
    signed = run([keygen, "-q", "-s", str(d / "ca"), "-I", "host", "-h", "-n", "127.0.0.1",
                  "-V", "-1d:+1d", str(d / "hostkey.pub")])
    assert signed.returncode == 0, signed.stderr
    wrong = run([keygen, "-q", "-s", str(d / "ca"), "-I", "bad", "-h", "-n", "elsewhere",
                 "-V", "-1d:+1d", str(d / "badcert.pub")])
    assert wrong.returncode == 0, wrong.stderr
    server = start_sshd(d / "sshd", host_key=d / "hostkey",
                        host_certificate=d / "hostkey-cert.pub")
    try:
        yield d, server
    finally:
        server.stop()


def _ssh_accepts(server: SshdServer, known_hosts: Path) -> bool:
    done = server.ssh("true", known_hosts=known_hosts)
    assert done.returncode == 255
    if "Permission denied" in done.stderr:
        return True
    assert "Host key verification failed" in done.stderr, done.stderr
    return False


def _variants(d: Path, port: int) -> dict[str, tuple[list[str], bool]]:
    ca, host, other = _key(d / "ca.pub"), _key(d / "hostkey.pub"), _key(d / "other.pub")
    name = f"[127.0.0.1]:{port}"
    return {
        "ca": ([f"@cert-authority * {ca.openssh()}"], True),
        "ca-other-hosts": ([f"@cert-authority *.example.com {ca.openssh()}"], False),
        "ca-revoked": ([f"@cert-authority * {ca.openssh()}", f"@revoked * {ca.openssh()}"],
                       False),
        "plain": ([f"{name} {host.openssh()}"], True),
        "plain-revoked": ([f"{name} {host.openssh()}", f"@revoked * {host.openssh()}"], False),
        "changed": ([f"{name} {other.openssh()}"], False),
        "unknown": ([f"otherhost {host.openssh()}"], False),
        "wildcard": ([f"[127.0.0.*]:{port} {host.openssh()}"], True),
        "negated": ([f"[127.0.0.*]:{port},!{name} {host.openssh()}"], False),
        "wrong-port": ([f"[127.0.0.1]:{port + 1} {host.openssh()}"], False),
    }


def test_check_host_key_agrees_with_ssh(setup: tuple[Path, SshdServer]) -> None:
    d, server = setup
    cert, plain = _key(d / "hostkey-cert.pub"), _key(d / "hostkey.pub")
    for label, (lines, expected) in _variants(d, server.port).items():
        kh = d / f"kh-{label}"
        kh.write_text("".join(f"{line}\n" for line in lines))
        real = _ssh_accepts(server, kh)
        by_cert = check_host_key(kh, "127.0.0.1", server.port, cert).status
        by_plain = check_host_key(kh, "127.0.0.1", server.port, plain).status
        ours = by_cert in ACCEPTED or (by_cert is not HostKeyStatus.REVOKED
                                       and by_plain in ACCEPTED)
        assert real is expected, label
        assert ours is expected, (label, by_cert, by_plain)


def test_hashed_entries_we_write_are_read_by_ssh(setup: tuple[Path, SshdServer]) -> None:
    d, server = setup
    kh = d / "kh-hashed"
    add_host_key(str(kh), "127.0.0.1", server.port, _key(d / "hostkey.pub"), hashed=True)
    assert kh.read_text().startswith("|1|")
    assert _ssh_accepts(server, kh)
    assert check_host_key(kh, "127.0.0.1", server.port, _key(d / "hostkey.pub")).status is \
        HostKeyStatus.MATCH


def test_certificate_for_another_name(setup: tuple[Path, SshdServer]) -> None:
    d, server = setup
    kh = d / "kh-badcert"
    kh.write_text(f"@cert-authority * {_key(d / 'ca.pub').openssh()}\n")
    result = check_host_key(kh, "127.0.0.1", server.port, _key(d / "badcert-cert.pub"))
    assert result.status is HostKeyStatus.NOT_FOUND
    assert result.certificate_problem == "Certificate invalid: name is not a listed principal"
