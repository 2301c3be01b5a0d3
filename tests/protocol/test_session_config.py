"""Session keywords of sshd_config (protocol/session_config.py) against the real sshd's
-t messages and -T lines, and the pty-req terminal modes (protocol/server_pty.py)."""

from __future__ import annotations

import os
import sys
import termios
from pathlib import Path

import pytest

from keytools.wire import Writer
from protocol.server_pty import PtyRequest, apply_modes, open_pty, parse_modes
from protocol.session_config import SessionPolicy
from protocol.sshd_config import parse_config
from tests.helpers import REPO_ROOT, openssh_version, run, tool_path
from tests.interop.sshd import sshd_path

LINES = ["MaxSessions 1", "MaxSessions x", "ClientAliveInterval 1m", "ClientAliveInterval 1x",
         "ClientAliveCountMax -", "PrintMotd maybe", "PrintMotd no", "PermitTTY no",
         "PermitUserRC no", "PermitUserEnvironment LANG,LC_*", "Subsystem sftp",
         "Subsystem sftp internal-sftp -l INFO", "Subsystem a b\nSubsystem a c"]
KEYS = ("maxsessions", "clientaliveinterval", "clientalivecountmax", "printmotd",
        "permittty", "permituserrc", "permituserenvironment", "subsystem")


def _both(tmp_path: Path, line: str, flag: str) -> tuple[tuple[int, str], tuple[int, str]]:
    keygen = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f",
                  str(tmp_path / "host")])
    assert keygen.returncode == 0
    (tmp_path / "c").write_text(f"HostKey {tmp_path / 'host'}\n{line}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    ours = run([sys.executable, "-m", "protocol.sshd_main", flag, "-f", "c"], cwd=tmp_path,
               env=env)
    theirs = run([sshd_path(), flag, "-f", "c"], cwd=tmp_path)
    return (ours.returncode, ours.stdout + ours.stderr), \
        (theirs.returncode, theirs.stdout + theirs.stderr)


#: Lines whose handling changed when OpenSSH 9.4 let Subsystem into Match blocks (9.2
#: refuses a repeated name and words a missing command differently); pysshd follows the
#: newer sshd, so they are compared only with a sshd at least that new.
NEWER_SUBSYSTEM_RULES = ("Subsystem sftp", "Subsystem a b\nSubsystem a c")
SUBSYSTEM_RULES_SINCE = (9, 4)


@pytest.mark.parametrize("line", LINES)
def test_config_test_mode_as_sshd(tmp_path: Path, line: str) -> None:
    if line in NEWER_SUBSYSTEM_RULES and openssh_version() < SUBSYSTEM_RULES_SINCE:
        pytest.skip(f"OpenSSH {openssh_version()} predates the {SUBSYSTEM_RULES_SINCE} "
                    "Subsystem rules pysshd follows")
    ours, theirs = _both(tmp_path, line, "-t")
    if theirs[0] == 0:
        assert ours[0] == 0, ours
    else:
        assert ours == theirs


VALID = ["MaxSessions 1", "ClientAliveInterval 1m", "PrintMotd no", "PermitTTY no",
         "PermitUserRC no", "PermitUserEnvironment LANG,LC_*",
         "Subsystem sftp internal-sftp -l INFO"]


@pytest.mark.parametrize("line", VALID)
def test_effective_config_lines_as_sshd(tmp_path: Path, line: str) -> None:
    ours, theirs = _both(tmp_path, line, "-T")
    if theirs[0] != 0:
        pytest.skip(f"sshd -T: {theirs[1]}")

    def pick(text: str) -> list[str]:
        return sorted(x for x in text.splitlines() if x.split(" ")[0] in KEYS)

    assert pick(ours[1]) == pick(theirs[1])


def test_policy_from_config() -> None:
    config = parse_config("MaxSessions 2\nSubsystem sftp internal-sftp\nPrintMotd no\n"
                          "ClientAliveInterval 5\nAllowAgentForwarding no\n"
                          "PermitUserEnvironment yes\n", "x")
    policy = SessionPolicy.from_config(config)
    assert (policy.max_sessions, policy.subsystem("sftp"), policy.print_motd,
            policy.client_alive_interval, policy.allow_agent_forwarding,
            policy.permit_user_environment) == (2, "internal-sftp", False, 5, False, ("*",))


def _modes(*pairs: tuple[int, int], tail: bytes = b"\x00") -> bytes:
    w = Writer()
    for opcode, value in pairs:
        w.byte(opcode).uint32(value)
    return w.getvalue() + tail


def test_parse_modes_stops_at_end_or_undefined_opcode() -> None:
    assert parse_modes(_modes((1, 3), (53, 0))) == ((1, 3), (53, 0))
    assert parse_modes(_modes((1, 3), tail=b"\xa0\x01\x02")) == ((1, 3),)
    assert parse_modes(b"") == ()


def test_modes_reach_the_pty() -> None:
    request = PtyRequest("xterm", 80, 24, 0, 0,
                         parse_modes(_modes((1, 2), (3, 255), (53, 0), (72, 1), (128, 9600),
                                            (129, 38400))))
    pty = open_pty(request)
    try:
        attrs = termios.tcgetattr(pty.slave)
        assert attrs[6][termios.VINTR] == b"\x02"
        assert attrs[6][termios.VERASE] == b"\x00"  # 255: disabled
        assert not attrs[3] & termios.ECHO
        assert attrs[1] & termios.ONLCR
        assert attrs[5] == termios.B38400  # (a Linux pty keeps one speed for both)
        assert os.get_terminal_size(pty.slave) == os.terminal_size((80, 24))
    finally:
        pty.close()


def test_apply_modes_ignores_unknown_opcodes() -> None:
    attrs = [0, 0, 0, 0, 0, 0, [b"\x00"] * 32]
    assert apply_modes(attrs, ((99, 1), (160, 1))) == attrs
    if not hasattr(termios, "VDSUSP"):  # Linux: no such character, skipped
        assert apply_modes(attrs, ((11, 5),)) == attrs
