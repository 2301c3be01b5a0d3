"""pysshd's sshd_config parser, -t and -T, compared with the real sshd on the same file."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest

from protocol.server_auth import expand_path
from protocol.sshd_config import BadOptions, ConfigError, convtime, dump_config, parse_config
from tests.helpers import REPO_ROOT, openssh_version, run, tool_path
from tests.interop.sshd import sshd_path

PYSSHD = [sys.executable, "-m", "protocol.sshd_main"]
ALGORITHM_KEYWORDS = {"ciphers", "macs", "kexalgorithms", "hostkeyalgorithms",
                      "pubkeyacceptedalgorithms", "casignaturealgorithms",
                      "hostbasedacceptedalgorithms"}
#: -T lines pysshd prints as the newest sshd does, with the first OpenSSH version that
#: prints them so: PerSourcePenalties* appeared in 9.8, and the persourcepenalties line
#: has had its 10.0 form (with refuseconnection:) since 10.0. An older installed sshd
#: lacks them, so they are compared only from that version on.
NEWER_DUMP_KEYWORDS = {"persourcepenalties": (10, 0), "persourcepenaltyexemptlist": (9, 8)}
#: the same value under the name older sshd prints (OpenSSH 9.x prints the alias
#: without-password, newer ones and pysshd prohibit-password)
OLDER_DUMP_NAMES = {"permitrootlogin without-password": "permitrootlogin prohibit-password"}


def comparable_dump(ours: str, theirs: str,
                    skip: frozenset[str] | set[str] = frozenset()) -> tuple[list[str], list[str]]:
    """The -T lines of the keywords pysshd prints (less ``skip`` and the keywords the
    installed sshd is too old to print), sorted, from both outputs."""
    version = openssh_version()
    keywords = {line.split()[0] for line in ours.splitlines() if line.strip()} - set(skip)
    keywords -= {k for k, since in NEWER_DUMP_KEYWORDS.items() if version < since}
    mine = sorted(line for line in ours.splitlines() if line.split()[0] in keywords)
    other = sorted(OLDER_DUMP_NAMES.get(line, line) for line in theirs.splitlines()
                   if line.strip() and line.split()[0] in keywords)
    return mine, other


def _pysshd(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = run([*PYSSHD, *args], env=env)
    return done.returncode, done.stdout, done.stderr


def test_defaults_and_first_value_wins() -> None:
    config = parse_config("MaxAuthTries 3\nMaxAuthTries 9\nLoginGraceTime 1m30s\n", "cfg",
                          options=["MaxAuthTries=2"])
    assert config.max_auth_tries == 2
    assert config.login_grace_time == 90
    assert config.ports == (22,)
    assert config.authorized_keys_files == (".ssh/authorized_keys", ".ssh/authorized_keys2")
    assert config.listeners() == [("::", 22), ("0.0.0.0", 22)]


def test_ports_and_listen_addresses_accumulate() -> None:
    text = "Port 2222\nPort 2223\nListenAddress 127.0.0.1\nListenAddress [::1]:99\n"
    config = parse_config(text, "cfg")
    assert config.listeners() == [("127.0.0.1", 2222), ("127.0.0.1", 2223), ("::1", 99)]
    assert parse_config(text, "cfg", ports=[7]).ports == (7,)


def test_unknown_keyword_counts_and_known_ones_warn() -> None:
    with pytest.raises(BadOptions) as info:
        parse_config("Port 22\nFoo 1\nUsePAM yes\nBar 2\n", "/x")
    assert info.value.message == ("/x: line 2: Bad configuration option: Foo\n"
                                  "/x: line 4: Bad configuration option: Bar\n"
                                  "/x: terminating, 2 bad configuration options")
    config = parse_config("kerberosauthentication yes\nMatch User x\n  KerberosAuthentication no\n"
                          "GSSAPIAuthentication no\n", "/x")
    # Match lines are kept for each connection; unimplemented keywords: one warning line
    assert config.warnings == ("pysshd: keywords not implemented yet, ignored: "
                               "KerberosAuthentication (line 1, line 3); "
                               "GSSAPIAuthentication (line 4)",)
    assert [n for _, _, n in config.match_lines] == [2, 3, 4]


def test_convtime() -> None:
    assert convtime("120") == 120
    assert convtime("2m") == 120
    assert convtime("1h30m5s") == 5405
    assert convtime("2x") is None
    assert convtime("") is None


def test_authorized_keys_file_tokens() -> None:
    assert expand_path("%h/.ssh/k_%u%%", "alice", "/home/alice", 1000) == \
        "/home/alice/.ssh/k_alice%"
    assert expand_path(".ssh/authorized_keys", "bob", "/home/bob", 1) == \
        "/home/bob/.ssh/authorized_keys"
    assert expand_path("/etc/keys/%U", "bob", "/home/bob", 1001) == "/etc/keys/1001"
    assert expand_path("%x", "bob", "/home/bob", 1) is None


@pytest.mark.parametrize("line", [
    "Port abc", "Port 0", "MaxAuthTries x", "LogLevel bogus", "PubkeyAuthentication maybe",
    "LoginGraceTime 2x", "Port", "Frobnicate yes",
])
def test_bad_values_as_sshd_words_them(tmp_path: Path, line: str) -> None:
    tool_path("ssh-keygen")
    made = run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host")])
    assert made.returncode == 0
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {tmp_path / 'host'}\n{line}\n")
    code, _, err = _pysshd("-t", "-f", str(config))
    theirs = run([sshd_path(), "-t", "-f", str(config)])
    assert (code, err) == (theirs.returncode, theirs.stderr)
    with pytest.raises((ConfigError, BadOptions)):
        parse_config(config.read_text(), str(config))


def test_dump_matches_sshd(tmp_path: Path) -> None:
    made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f",
                str(tmp_path / "host")])
    assert made.returncode == 0
    config = tmp_path / "sshd_config"
    config.write_text(
        f"HostKey {tmp_path / 'host'}\nPort 2222\nPort 2223\nListenAddress 127.0.0.1\n"
        "ListenAddress 127.0.0.2:99\nAuthorizedKeysFile %h/a %u/b\nLoginGraceTime 1m30s\n"
        "MaxAuthTries 4\nPubkeyAuthentication no\nPasswordAuthentication no\n"
        f"TrustedUserCAKeys {tmp_path / 'ca'}\nRevokedKeys {tmp_path / 'krl'}\n"
        f"PidFile {tmp_path / 'pid'}\nLogLevel VERBOSE\nAcceptEnv LANG LC_*\nAcceptEnv FOO\n")
    code, out, err = _pysshd("-T", "-f", str(config))
    assert code == 0, err
    assert out == dump_config(parse_config(config.read_text(), str(config)))
    theirs = run([sshd_path(), "-T", "-f", str(config)])
    assert theirs.returncode == 0, theirs.stderr
    # the algorithm keywords have pysshd's own (stricter) defaults: compared elsewhere
    ours, their_lines = comparable_dump(out, theirs.stdout, ALGORITHM_KEYWORDS)
    assert ours == their_lines


def test_test_mode_without_host_keys(tmp_path: Path) -> None:
    config = tmp_path / "sshd_config"
    config.write_text("Port 2222\n")
    code, _, err = _pysshd("-t", "-f", str(config))
    assert code == 1
    assert "no hostkeys available -- exiting." in err


def test_every_keyword_sshd_prints_is_known() -> None:
    """Each keyword the installed sshd's -T prints is implemented or warned about, never
    'Bad configuration option' (so an existing sshd_config loads)."""
    theirs = run([sshd_path(), "-T", "-f", "/dev/null"])
    assert theirs.returncode == 0, theirs.stderr
    names = {line.split()[0] for line in theirs.stdout.splitlines() if line.strip()}
    assert len(names) > 50
    for name in sorted(names - {"match"}):
        try:
            parse_config(f"{name} x\n", "cfg")
        except BadOptions as exc:
            pytest.fail(exc.message)
        except ConfigError:
            pass  # a value error means the keyword itself was recognised


def test_installed_sshd_config_loads() -> None:
    path = Path("/etc/ssh/sshd_config")
    if not path.exists():
        pytest.skip("no /etc/ssh/sshd_config")
    # a ConfigError (a value checked more strictly) is allowed; an unknown keyword is not
    with contextlib.suppress(ConfigError):
        parse_config(path.read_text(errors="replace"), str(path))


def test_command_line_errors_as_sshd(tmp_path: Path) -> None:
    config = tmp_path / "sshd_config"
    config.write_text("Port 2222\n")
    for args in (["-t", "-f", str(tmp_path / "missing")], ["-t", "-f", str(config), "-o", "Foo=1"]):
        code, _, err = _pysshd(*args)
        theirs = run([sshd_path(), *args])
        assert (code, err) == (theirs.returncode, theirs.stderr)
    code, _, err = _pysshd("-z")
    theirs = run([sshd_path(), "-z"])
    assert code == theirs.returncode
    assert err.splitlines()[0] == theirs.stderr.splitlines()[0]
    assert "Traceback" not in err
