"""100 MiB through a remote `cat` arrives intact (sha256 compared), both ways at once:
pyssh -> real sshd, real ssh -> pysshd, and pyssh -> pysshd, with both AEAD ciphers.

The data goes up as the command's stdin and comes back as its stdout, so one run
checks the client's and the server's send and receive paths, flow control included.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent.agentproc import base_env
from tests.helpers import REPO_ROOT, tool_path
from tests.interop.pysshd import USER, PysshdServer, keygen, start_pysshd
from tests.interop.sshd import SshdServer, start_sshd

PYSSH = [sys.executable, "-c",
         "from protocol.cli import pyssh_main; raise SystemExit(pyssh_main())"]
SIZE = 100 << 20
CIPHERS = ("aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com")


@dataclass
class Servers:
    directory: Path
    key: Path
    data: Path
    digest: str
    sshd: SshdServer
    pysshd: PysshdServer


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    d = tmp_path_factory.mktemp("bulk")
    keygen("-q", "-t", "ed25519", "-N", "", "-f", d / "host")
    keygen("-q", "-t", "ed25519", "-N", "", "-f", d / "id")
    data = d / "data"
    digest = hashlib.sha256()
    with open(data, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(SIZE >> 20):
            chunk = bytes([i & 0xFF]) + block[1:]  # every MiB differs
            digest.update(chunk)
            f.write(chunk)
    sshd = start_sshd(d / "sshd", f"AuthorizedKeysFile {d / 'id.pub'}", host_key=d / "host")
    try:
        (d / "pysshd").mkdir()
        pysshd = start_pysshd(d / "pysshd", f"HostKey {d / 'host'}\n"
                              f"AuthorizedKeysFile {d / 'id.pub'}\n")
    except BaseException:
        sshd.stop()
        raise
    try:
        yield Servers(d, d / "id", data, digest.hexdigest(), sshd, pysshd)
    finally:
        pysshd.stop()
        sshd.stop()


def options(port: int, key: Path, cipher: str) -> list[str]:
    return ["-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
            "-o", "LogLevel=ERROR", "-i", str(key), "-c", cipher]


def round_trip(servers: Servers, client: list[str], out: Path) -> None:
    """Run ``client`` with the data as stdin, stdout to ``out``; check status and hash."""
    env = base_env(servers.directory)
    with open(servers.data, "rb") as stdin, open(out, "wb") as stdout:
        done = subprocess.run(client, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                              env=env, cwd=REPO_ROOT, timeout=120, check=False,
                              start_new_session=True)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert out.stat().st_size == SIZE
    digest = hashlib.sha256()
    with open(out, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == servers.digest
    out.unlink()


@pytest.mark.parametrize("cipher", CIPHERS)
def test_pyssh_to_sshd(servers: Servers, cipher: str, tmp_path: Path) -> None:
    cmd = [*PYSSH, *options(servers.sshd.port, servers.key, cipher), "root@127.0.0.1", "cat"]
    round_trip(servers, cmd, tmp_path / "out")


@pytest.mark.parametrize("cipher", CIPHERS)
def test_ssh_to_pysshd(servers: Servers, cipher: str, tmp_path: Path) -> None:
    cmd = [tool_path("ssh"), *options(servers.pysshd.port, servers.key, cipher),
           f"{USER}@127.0.0.1", "cat"]
    round_trip(servers, cmd, tmp_path / "out")
    assert servers.pysshd.proc.poll() is None, servers.pysshd.log_text()


def test_pyssh_to_pysshd(servers: Servers, tmp_path: Path) -> None:
    cmd = [*PYSSH, *options(servers.pysshd.port, servers.key, CIPHERS[0]),
           f"{USER}@127.0.0.1", "cat"]
    round_trip(servers, cmd, tmp_path / "out")

