"""Match blocks, -T -C and the authentication policy keywords, compared with the real sshd.

``-T`` output is compared line by line with the installed sshd's on the same file and
connection spec, for the keywords pysshd prints (the algorithm lists, whose defaults
pysshd deliberately narrows, are left to their own tests); ``-t`` errors are compared
byte for byte. The helpers behind the policy (address lists, user@host patterns,
AuthenticationMethods lists, principals lines, StrictModes paths) have unit tests here.
"""

from __future__ import annotations

import os
import pwd
import re
import sys
from pathlib import Path

import pytest

from protocol.auth_files import command_argv, percent_expand, secure_path
from protocol.principals import match_principals
from protocol.server_policy import MethodLists, check_methods
from protocol.sshd_config import GLOBAL_ONLY, ConfigError, dump_for_spec, parse_config
from protocol.sshd_match import ConnectionInfo, addr_match_list, match_condition, match_user
from tests.helpers import REPO_ROOT, TESTDATA, openssh_version, run, tool_path
from tests.interop.sshd import sshd_path
from tests.protocol.test_sshd_config import comparable_dump

#: keywords whose permission inside Match changed between OpenSSH versions, with the
#: version from which sshd allows them there (pysshd follows the newer rule): Subsystem
#: may appear in a Match block since OpenSSH 9.4 ("allow override of Subsystem
#: directives in sshd Match blocks")
MATCH_ALLOWED_SINCE = {"subsystem": (9, 4)}

PYSSHD = [sys.executable, "-m", "protocol.sshd_main"]
ALGORITHM_KEYWORDS = {"ciphers", "macs", "kexalgorithms", "hostkeyalgorithms",
                      "pubkeyacceptedalgorithms", "casignaturealgorithms",
                      "hostbasedacceptedalgorithms"}

CONFIG = """\
PermitRootLogin no
PasswordAuthentication no
AllowUsers alice bob@10.0.0.0/8 *@192.168.1.?
AllowUsers carol
DenyGroups games
AuthenticationMethods publickey,password publickey,keyboard-interactive
AuthorizedKeysCommand /usr/local/bin/keys %u %f
AuthorizedKeysCommandUser nobody
StrictModes no
UsePAM no
Match User bob Address 10.0.0.0/8,!10.1.0.0/16
  PasswordAuthentication yes
  AllowUsers bob
  ForceCommand echo only this
  AuthenticationMethods password
Match Address 192.168.0.0/16 User *
  PermitRootLogin prohibit-password
  Banner /etc/issue.net
  AcceptEnv LANG
Match Host *.example.org
  AuthorizedPrincipalsFile /etc/ssh/principals/%u
  AuthorizedPrincipalsCommand /usr/bin/principals %u %i
  AuthorizedPrincipalsCommandUser nobody
Match LocalAddress 127.0.0.2 LocalPort 2222
  PermitEmptyPasswords yes
  KbdInteractiveAuthentication no
  MaxAuthTries 2
Match Group root,!nosuchgroup
  DenyUsers nobody root@172.16.0.1
  PubkeyAuthentication no
Match all
  AuthorizedKeysFile /etc/ssh/keys/%u
  TrustedUserCAKeys /etc/ssh/ca.pub
"""

SPECS = [
    "user=bob,addr=10.0.0.1,host=h,laddr=127.0.0.1,lport=22",
    "user=bob,addr=10.1.2.3,host=h,laddr=127.0.0.1,lport=22",
    "user=alice,addr=192.168.7.7,host=x.example.org,laddr=127.0.0.2,lport=2222",
    "user=root,addr=172.16.0.1,host=a.example.org,laddr=127.0.0.2,lport=2223",
    "addr=192.168.7.7,lport=22",
    "user=root,lport=22",
]


def _write(tmp_path: Path, text: str) -> Path:
    made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f",
                str(tmp_path / "host")])
    assert made.returncode == 0, made.stderr
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {tmp_path / 'host'}\n{text}")
    return config


def _pysshd(*args: str) -> tuple[int, str, str]:
    done = run([*PYSSHD, *args], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    return done.returncode, done.stdout, done.stderr


def _compare_dump(ours: str, theirs: str) -> None:
    mine, other = comparable_dump(ours, theirs, ALGORITHM_KEYWORDS)
    assert mine == other


@pytest.mark.parametrize("spec", SPECS)
def test_dump_with_connection_spec_matches_sshd(tmp_path: Path, spec: str) -> None:
    config = _write(tmp_path, CONFIG)
    theirs = run([sshd_path(), "-T", "-f", str(config), "-C", spec])
    code, out, err = _pysshd("-T", "-f", str(config), "-C", spec)
    assert (code, err) == (theirs.returncode, theirs.stderr), err
    assert out == dump_for_spec(parse_config(config.read_text(), str(config)), spec)
    _compare_dump(out, theirs.stdout)


@pytest.mark.parametrize("spec", ["lport=x", "foo=1", "lport=22,bogus"])
def test_connection_spec_errors_as_sshd(tmp_path: Path, spec: str) -> None:
    """Bad entries: exit 1 before the configuration is read. (A spec without lport
    meeting Match LocalPort is fatal in OpenSSH 9.2, pysshd too; not compared, as
    newer sshd may differ.)"""
    config = _write(tmp_path, CONFIG)
    theirs = run([sshd_path(), "-T", "-f", str(config), "-C", spec])
    code, out, err = _pysshd("-T", "-f", str(config), "-C", spec)
    assert (code, err) == (theirs.returncode, theirs.stderr)
    if theirs.returncode == 0:
        _compare_dump(out, theirs.stdout)


def test_dump_without_spec_applies_no_match(tmp_path: Path) -> None:
    config = _write(tmp_path, CONFIG.split("Match LocalAddress")[0])
    theirs = run([sshd_path(), "-T", "-f", str(config)])
    code, out, err = _pysshd("-T", "-f", str(config))
    assert (code, err) == (theirs.returncode, theirs.stderr)
    _compare_dump(out, theirs.stdout)


@pytest.mark.parametrize("text", [
    "Match User x\n  Port 23\n",
    "Match User x\n  HostKey /nonexistent\n",
    "Match User x\n  StrictModes no\n",
    "Match Foo bar\n",
    "Match all User x\n",
    "Match User\n",
    "Match Address 10.0.0.0/33\n",
    "Match LocalPort 99999\n",
    "Match User x\n  Bogus yes\n",
    "PermitRootLogin maybe\n",
    "AuthenticationMethods publickey,foo\n",
    "AuthenticationMethods any publickey\n",
    "PasswordAuthentication no\nAuthenticationMethods publickey,password\n",
    "AllowUsers a@10.0.0.0/33\n",
    "AuthorizedKeysCommand relative/path\n",
    "StrictModes perhaps\n",
    "AcceptEnv A=B\n",
    "Match User x\n  ForceCommand echo x\nMatch all\n  UsePAM no\n",
])
def test_bad_lines_as_sshd_words_them(tmp_path: Path, text: str) -> None:
    config = _write(tmp_path, text)
    theirs = run([sshd_path(), "-t", "-f", str(config)])
    code, _, err = _pysshd("-t", "-f", str(config))
    assert (code, err) == (theirs.returncode, theirs.stderr)


def test_match_in_command_line_option(tmp_path: Path) -> None:
    config = _write(tmp_path, "")
    args = ["-t", "-f", str(config), "-o", "Match=User x"]
    theirs = run([sshd_path(), *args])
    code, _, err = _pysshd(*args)
    assert (code, err) == (theirs.returncode, theirs.stderr)


def _sshd_knows(keyword: str, tmp_path: Path) -> bool:
    config = _write(tmp_path, f"{keyword} x\n")
    done = run([sshd_path(), "-t", "-f", str(config)])
    return "Bad configuration option" not in done.stderr


def test_match_permissions_agree_with_sshd(tmp_path: Path) -> None:
    """Keywords the installed sshd refuses inside a Match block are exactly our
    GLOBAL_ONLY ones, for every keyword both know; a keyword of MATCH_ALLOWED_SINCE is
    compared only with an sshd that has the newer rule."""
    from protocol.sshd_config import (
        _BUILT_WITHOUT,
        _DEPRECATED,
        _SUPPORTED,
        _UNSUPPORTED,
        ALIASES,
    )

    names = set(_SUPPORTED) | set(_UNSUPPORTED) | set(_DEPRECATED) | set(_BUILT_WITHOUT) \
        | set(ALIASES)
    names -= {"match", "include", "rdomain"}
    version = openssh_version()
    names -= {k for k, since in MATCH_ALLOWED_SINCE.items() if version < since}
    config = tmp_path / "sshd_config"
    made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f",
                str(tmp_path / "host")])
    assert made.returncode == 0
    disagreements = []
    for name in sorted(names):
        config.write_text(f"HostKey {tmp_path / 'host'}\nMatch User zz\n{name} x\n")
        err = run([sshd_path(), "-t", "-f", str(config)]).stderr
        if "Bad configuration option" in err:
            continue  # not in this sshd (newer or Debian-only keyword)
        theirs = "not allowed within a Match block" in err
        if theirs != (name in GLOBAL_ONLY):
            disagreements.append(name)
    assert disagreements == []


SUBSYSTEM_CONFIG = """\
Subsystem sftp internal-sftp
Subsystem backup /usr/local/bin/backup -q
Match User alice
  Subsystem sftp /usr/lib/openssh/sftp-server -l INFO
  Subsystem report /usr/local/bin/report
Match User alice Address 10.0.0.0/8
  Subsystem sftp /bin/false
"""


@pytest.mark.parametrize("spec", ["user=alice,addr=10.1.1.1,host=h,laddr=127.0.0.1,lport=22",
                                  "user=bob,addr=10.1.1.1,host=h,laddr=127.0.0.1,lport=22"])
def test_subsystem_in_match(tmp_path: Path, spec: str) -> None:
    """Subsystem inside Match (OpenSSH 9.4+): a matching block's definition replaces the
    global one of that name or is added; among matching blocks the first wins. Compared
    with the installed sshd when it allows this, else with the rule itself."""
    config = _write(tmp_path, SUBSYSTEM_CONFIG)
    code, out, err = _pysshd("-T", "-f", str(config), "-C", spec)
    assert code == 0, err
    ours = [line for line in out.splitlines() if line.startswith("subsystem ")]
    if openssh_version() >= MATCH_ALLOWED_SINCE["subsystem"]:
        theirs = run([sshd_path(), "-T", "-f", str(config), "-C", spec])
        assert theirs.returncode == 0, theirs.stderr
        assert ours == [line for line in theirs.stdout.splitlines()
                        if line.startswith("subsystem ")]
        return
    refused = run([sshd_path(), "-t", "-f", str(config)])
    assert "not allowed within a Match block" in refused.stderr
    base = parse_config(config.read_text(), str(config))
    matched = base.for_connection(ConnectionInfo(user="alice", host="h", address="10.1.1.1",
                                                 laddress="127.0.0.1", lport=22))
    alice = [(n, c) for n, c in matched.subsystems]
    assert alice[:2] == [("sftp", "/usr/lib/openssh/sftp-server -l INFO"),
                         base.subsystems[1]]
    assert alice[2][0] == "report" and len(alice) == 3
    expected = alice if spec.startswith("user=alice") else list(base.subsystems)
    assert ours == [f"subsystem {n} {c}" for n, c in expected]


def test_installed_sshd_keywords_are_all_known(tmp_path: Path) -> None:
    """Every word in the sshd binary that sshd takes as a keyword is one pysshd knows."""
    strings = run(["strings", sshd_path()])
    if strings.returncode != 0:
        pytest.skip("no strings(1)")
    words = sorted({w for w in strings.stdout.split() if re.fullmatch(r"[a-z0-9]{6,40}", w)})
    made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f",
                str(tmp_path / "host")])
    assert made.returncode == 0
    from concurrent.futures import ThreadPoolExecutor

    def known(word: str) -> bool:
        path = tmp_path / f"cfg-{word}"
        path.write_text(f"HostKey {tmp_path / 'host'}\n{word} x\n")
        return "Bad configuration option" not in run([sshd_path(), "-t", "-f",
                                                      str(path)]).stderr

    with ThreadPoolExecutor(8) as pool:
        keywords = [w for w, ok in zip(words, pool.map(known, words), strict=True) if ok]
    assert len(keywords) > 80
    from keytools.errors import SshError
    from protocol.sshd_config import BadOptions

    missing = []
    for word in keywords:
        try:
            parse_config(f"{word} x\n", "cfg")
        except BadOptions:
            missing.append(word)
        except SshError:
            pass
    assert missing == []


# -- helpers -------------------------------------------------------------------------


def test_addr_match_list() -> None:
    assert addr_match_list("10.1.2.3", "10.0.0.0/8") == 1
    assert addr_match_list("10.1.2.3", "10.0.0.0/8,!10.1.0.0/16") == -1
    assert addr_match_list("192.168.1.5", "192.168.1.?") == 1
    assert addr_match_list("::1", "::1/128") == 1
    assert addr_match_list("10.1.2.3", "10.0.0.1/8") == -2
    assert addr_match_list(None, "10.0.0.0/33") == -2
    assert addr_match_list("10.1.2.3", "11.0.0.0/8") == 0


def test_match_user_patterns() -> None:
    assert match_user("bob", "h", "10.1.1.1", "bob@10.0.0.0/8") == 1
    assert match_user("bob", "h", "11.1.1.1", "bob@10.0.0.0/8") == 0
    assert match_user("bob", "x.example.org", "1.1.1.1", "b*@*.example.org") == 1
    assert match_user("alice", "h", "10.1.1.1", "bob") == 0
    assert match_user(None, None, None, "a@10.0.0.0/33") == -1


def test_match_condition_criteria() -> None:
    root_groups = ConnectionInfo(user="root", host="h", address="10.0.0.1",
                                 laddress="127.0.0.1", lport=22)
    assert match_condition("User r*,!bob", 1, root_groups)
    assert not match_condition("User root Address 11.0.0.0/8", 1, root_groups)
    assert match_condition("Group root", 1, root_groups)
    assert match_condition("LocalPort 22 LocalAddress 127.0.0.0/8", 1, root_groups)
    assert not match_condition("Host *.org", 1, root_groups)
    assert match_condition("all", 1, None)
    assert not match_condition("User root", 1, None)  # start-up: syntax only


def test_method_lists_partial_success() -> None:
    config = parse_config("AuthenticationMethods publickey,password publickey,publickey\n",
                          "cfg")
    lists = MethodLists.from_config(config)
    assert lists.allowed("publickey") and not lists.allowed("password")
    assert not lists.complete("publickey")
    assert lists.allowed("password") and lists.allowed("publickey")
    assert lists.complete("password")
    assert MethodLists.from_config(parse_config("", "cfg")).complete("password")
    assert check_methods(parse_config("KbdInteractiveAuthentication no\n"
                                      "AuthenticationMethods keyboard-interactive\n", "c"))[1]


def test_principals_lines() -> None:
    from keytools.certificate import Certificate
    from keytools.keyfile import load_public

    certs = sorted(TESTDATA.rglob("*-cert.pub"))
    cert = next((c for c in (load_public(str(p))[0] for p in certs)
                 if isinstance(c, Certificate) and c.principals), None)
    if cert is None:
        pytest.skip("no user certificate with principals in testdata")
    name = cert.principals[0]
    opts = match_principals(f"# comment\n\nnobody\ncommand=\"echo hi\" {name}\n", cert, "f")
    assert opts is not None and opts.command == "echo hi"
    assert match_principals("nobody\n", cert, "f") is None
    assert match_principals(f"bad-option=x {name}\n", cert, "f") is None


def test_percent_expand_and_command_argv() -> None:
    assert percent_expand("%h/.ssh/%u_%%", {"h": "/home/a", "u": "a"}) == "/home/a/.ssh/a_%"
    assert percent_expand("%x", {"u": "a"}) is None
    assert command_argv("/bin/keys %u %t", {"u": "alice", "t": "ssh-ed25519"}, "alice") == \
        ["/bin/keys", "alice", "ssh-ed25519"]
    assert command_argv("/bin/keys", {}, "alice") == ["/bin/keys", "alice"]


def test_secure_path(tmp_path: Path) -> None:
    f = tmp_path / "k"
    f.write_text("x")
    uid = os.getuid()
    reason = secure_path(str(f), f.stat(), str(tmp_path), uid)
    assert reason is None  # stops at the "home" directory
    reason = secure_path(str(f), f.stat(), None, uid)
    assert reason == "bad ownership or modes for directory /tmp"
    f.chmod(0o666)
    assert secure_path(str(f), f.stat(), str(tmp_path), uid) == \
        f"bad ownership or modes for file {f}"
    if uid == 0:
        other = next((p.pw_uid for p in pwd.getpwall() if p.pw_uid not in (0, uid)), None)
        if other is not None:
            f.chmod(0o644)
            os.chown(f, other, -1)
            # a file of another user is refused (root-owned ones are accepted)
            assert secure_path(str(f), f.stat(), str(tmp_path), other + 1) == \
                f"bad ownership or modes for file {f}"


def test_for_connection_replaces_lists() -> None:
    config = parse_config("AllowUsers a b\nAcceptEnv LANG\nMatch User x\n  AllowUsers c\n"
                          "  AcceptEnv LC_*\n", "cfg")
    assert config.allow_users == ("a", "b")
    matched = config.for_connection(ConnectionInfo(user="x", address="1.2.3.4"))
    assert (matched.allow_users, matched.accept_env) == (("c",), ("LC_*",))
    other = config.for_connection(ConnectionInfo(user="y", address="1.2.3.4"))
    assert other.allow_users == ("a", "b")
    with pytest.raises(ConfigError):
        config.for_connection(ConnectionInfo(address="1.2.3.4"))  # user missing, not -T


@pytest.mark.parametrize("spec", ["user=bob,lport=22", "user=al,lport=22"])
def test_include_with_match_blocks(tmp_path: Path, spec: str) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text(
        "PasswordAuthentication no\nMatch User bob\n  Banner /etc/issue\n")
    (tmp_path / "conf.d" / "b.conf").write_text("PermitRootLogin yes\n")
    config = _write(tmp_path, f"Include {tmp_path}/conf.d/*.conf {tmp_path}/none-*.conf\n"
                              "AllowUsers x\nMatch User bob\n  AllowUsers y\n")
    theirs = run([sshd_path(), "-T", "-f", str(config), "-C", spec])
    code, out, err = _pysshd("-T", "-f", str(config), "-C", spec)
    assert (code, err) == (theirs.returncode, theirs.stderr)
    _compare_dump(out, theirs.stdout)
