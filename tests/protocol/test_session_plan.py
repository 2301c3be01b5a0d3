"""ssh.c's session decisions in protocol/session_options.plan_session: pty or not (with
the notice), -f/-N/-s/-e and the session keywords of ssh_config, with readconf's errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from protocol.session_options import SessionError, SessionPlan, env_requests, plan_session
from protocol.ssh_cli import parse_args
from protocol.ssh_config import ConfigError
from protocol.ssh_log import Log
from protocol.ssh_main import configure
from tests.helpers import run, tool_path


def plan(argv: list[str], tmp_path: Path, config: str = "", *, tty: bool = True,
         ) -> tuple[SessionPlan, str]:
    path = tmp_path / "config"
    path.write_text(config)
    args = parse_args(["-F", str(path), *argv])
    resolved, _ = configure(args)
    stream = io.StringIO()
    got = plan_session(args, resolved, Log(stream=stream), stdin_is_tty=tty)
    return got, stream.getvalue()


@pytest.mark.parametrize(("argv", "stdin_tty", "expected"), [
    (["h"], True, True),  # no command: a pty
    (["h", "ls"], True, False),  # a command: none
    (["-t", "h", "ls"], True, True),
    (["-T", "h"], True, False),
    (["-t", "h", "ls"], False, False),  # stdin not a terminal
    (["-tt", "h", "ls"], False, True),  # unless forced
    (["-n", "-t", "h", "ls"], True, False),
    (["-N", "-t", "h"], True, False),
])
def test_tty_decision(argv: list[str], stdin_tty: bool, expected: bool, tmp_path: Path) -> None:
    assert plan(argv, tmp_path, tty=stdin_tty)[0].tty is expected


def test_notice_when_a_pty_is_refused(tmp_path: Path) -> None:
    _, said = plan(["-t", "h", "ls"], tmp_path, tty=False)
    assert said == "Pseudo-terminal will not be allocated because stdin is not a terminal.\r\n"
    assert plan(["-T", "h"], tmp_path, tty=False)[1] == ""


def test_config_keywords(tmp_path: Path) -> None:
    got, _ = plan(["h"], tmp_path, "Host *\n  RequestTTY no\n  EscapeChar ^]\n"
                  "  ServerAliveInterval 1m\n  ServerAliveCountMax 5\n  TCPKeepAlive no\n"
                  "  SendEnv LANG LC_*\n  SendEnv -LC_* X\n  SetEnv A=1 B=2 A=3\n"
                  "  SetEnv C=4\n  SessionType subsystem\n")
    assert (got.tty, got.escape_char, got.alive_interval, got.alive_count_max) == \
        (False, 0x1D, 60, 5)
    assert not got.tcp_keepalive
    assert got.send_env == ("LANG", "X")
    assert got.set_env == (("A", "1"), ("B", "2"))  # the first SetEnv line only
    assert got.session_type == "subsystem"
    assert env_requests(got, {"LANG": "C", "LC_ALL": "C", "X": "y"}) == \
        [("LANG", "C"), ("X", "y"), ("A", "1"), ("B", "2")]


def test_flags(tmp_path: Path) -> None:
    got, _ = plan(["-e", "none", "-f", "-s", "h", "sftp"], tmp_path)
    assert (got.escape_char, got.fork, got.stdin_null, got.session_type, got.command) == \
        (-1, True, True, "subsystem", "sftp")
    assert plan(["-N", "h"], tmp_path)[0].session_type == "none"


def test_fatal_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^Bad escape character 'ab'\.$"):
        plan(["-e", "ab", "h"], tmp_path)
    with pytest.raises(SessionError, match="without a command to execute"):
        plan(["-f", "h"], tmp_path)


@pytest.mark.parametrize("option", [
    "EscapeChar=ab", "ServerAliveInterval=x", "ServerAliveCountMax=x",
    "ServerAliveCountMax=-1", "TCPKeepAlive=maybe", "SendEnv=A=b", "SetEnv=novalue",
])
def test_bad_values_as_ssh(option: str, tmp_path: Path) -> None:
    """readconf.c's words, taken from the real ``ssh -G`` on the same option."""
    real = run([tool_path("ssh"), "-G", "-F", "/dev/null", "-o", option, "h"])
    assert real.returncode == 255
    with pytest.raises(ConfigError) as err:
        plan(["-o", option, "h"], tmp_path)
    assert err.value.message == real.stderr.strip()


SESSION_KEYS = ("requesttty", "sessiontype", "stdinnull", "forkafterauthentication",
                "tcpkeepalive", "serveralivecountmax", "serveraliveinterval", "sendenv",
                "setenv", "escapechar")


@pytest.mark.parametrize("argv", [
    ["-t", "-e", "^]", "-o", "SendEnv=A B", "-o", "SendEnv=-A", "-o", "SetEnv=X=1 Y=\"a b\"",
     "-o", "ServerAliveInterval=1m", "-o", "ServerAliveCountMax=5", "-o", "TCPKeepAlive=no",
     "h"],
    ["-tt", "-n", "-s", "-e", " ", "h", "sftp"],
    ["-N", "-e", "none", "h"],
    ["-T", "-f", "-o", "BatchMode=yes", "h", "cmd"],
    ["-o", "RequestTTY=force", "-o", "SessionType=none", "-o", "StdinNull=yes", "h"],
])
def test_dump_matches_ssh(argv: list[str]) -> None:
    """``pyssh -G`` prints the session keywords as the real ``ssh -G`` does."""
    from tests.agent.agentproc import base_env
    from tests.helpers import REPO_ROOT
    from tests.protocol.test_ssh_config import PYSSH

    real = run([tool_path("ssh"), "-G", "-F", "/dev/null", *argv])
    ours = run([*PYSSH, "-G", "-F", "/dev/null", *argv], env=base_env(), cwd=REPO_ROOT)
    assert real.returncode == ours.returncode == 0, (real.stderr, ours.stderr)

    def pick(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.split(" ", 1)[0] in SESSION_KEYS]

    assert pick(ours.stdout) == pick(real.stdout)
    assert len(pick(ours.stdout)) >= 8
