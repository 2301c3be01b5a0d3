"""AddressFamily and ListenAddress resolution, compared with the real sshd's -T and -t."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from protocol.sshd_config import ConfigError, parse_config, resolve_listeners
from tests.helpers import REPO_ROOT, run, tool_path
from tests.interop.sshd import sshd_path

PYSSHD = [sys.executable, "-m", "protocol.sshd_main"]


@pytest.mark.parametrize(("text", "expected"), [
    ("", [("::", 22), ("0.0.0.0", 22)]),
    ("AddressFamily inet\n", [("0.0.0.0", 22)]),
    ("AddressFamily INET6\nPort 2022\n", [("::", 2022)]),
    ("AddressFamily inet\nListenAddress localhost:99\n", [("127.0.0.1", 99)]),
    ("ListenAddress [::1]:99\nAddressFamily inet6\n", [("::1", 99)]),
])
def test_listeners_follow_address_family(text: str, expected: list[tuple[str, int]]) -> None:
    assert resolve_listeners(parse_config(text, "cfg")).listeners() == expected


@pytest.mark.parametrize(("text", "message"), [
    ("AddressFamily inet\nListenAddress ::1\n",
     "bad addr or host: ::1 ("),
    ("AddressFamily inet6\nListenAddress 127.0.0.1\n",
     "bad addr or host: 127.0.0.1 ("),
    ("AddressFamily bogus\n", 'cfg line 1: unsupported option "bogus".'),
])
def test_bad_family_is_fatal(text: str, message: str) -> None:
    """(the resolver's words are compared with sshd's in tests/interop/
    test_pysshd_config_audit.py)"""
    with pytest.raises(ConfigError) as raised:
        resolve_listeners(parse_config(text, "cfg"))
    assert raised.value.message.startswith(message)


def test_address_family_only_global() -> None:
    with pytest.raises(ConfigError, match="not allowed within a Match block"):
        parse_config("Match User x\n  AddressFamily inet\n", "cfg")


@pytest.mark.parametrize("lines", [
    "", "AddressFamily inet", "AddressFamily inet6", "AddressFamily any\nPort 2200\nPort 2201",
    "AddressFamily inet\nListenAddress localhost\nListenAddress 127.0.0.2:99",
    "ListenAddress ::1\nListenAddress 127.0.0.1:2222\nAddressFamily any",
    "AddressFamily inet6\nListenAddress [::1]:2222",
])
def test_dump_matches_sshd(tmp_path: Path, lines: str) -> None:
    made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f",
                str(tmp_path / "host")])
    assert made.returncode == 0, made.stderr
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {tmp_path / 'host'}\n{lines}\n")
    ours = run([*PYSSHD, "-T", "-f", str(config)],
               env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    theirs = run([sshd_path(), "-T", "-f", str(config)])
    assert (ours.returncode, theirs.returncode) == (0, 0), ours.stderr + theirs.stderr

    def wanted(out: str) -> list[str]:
        return sorted(line for line in out.splitlines()
                      if line.split(" ")[0] in ("addressfamily", "listenaddress", "port"))

    assert wanted(ours.stdout) == wanted(theirs.stdout)


def test_command_line_port_host_key_and_option_as_sshd(tmp_path: Path) -> None:
    """-p replaces every Port line, -h comes before the file's HostKey lines, -o wins
    over the file: the -T lines of both servers agree."""
    for name in ("host", "other"):
        made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / name)])
        assert made.returncode == 0, made.stderr
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {tmp_path / 'host'}\nPort 2022\nLogLevel INFO\n"
                      "ListenAddress 127.0.0.1\n")
    args = ["-T", "-f", str(config), "-p", "2200", "-p", "2201", "-h", str(tmp_path / "other"),
            "-o", "LogLevel DEBUG2", "-o", "AddressFamily=inet"]
    ours = run([*PYSSHD, *args], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    theirs = run([sshd_path(), *args])
    assert (ours.returncode, theirs.returncode) == (0, 0), ours.stderr + theirs.stderr

    def wanted(out: str) -> list[str]:
        return sorted(line for line in out.splitlines() if line.split(" ")[0] in (
            "addressfamily", "listenaddress", "port", "hostkey", "loglevel"))

    assert wanted(ours.stdout) == wanted(theirs.stdout)
    assert "port 2200" in wanted(ours.stdout)
