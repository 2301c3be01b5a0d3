"""The authentication and proxy keywords of ssh_config: ``pyssh -G`` against the real
``ssh -G`` on the same files and flags, ProxyJump parsing, the ProxyCommand ssh builds for
ProxyJump, and the AuthOptions they give."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from protocol.ssh_config import DUMPED_KEYS
from protocol.ssh_proxy import Hop, Jump, jump_command, parse_hop, parse_jump
from tests.agent.agentproc import base_env
from tests.helpers import REPO_ROOT, run, tool_path

PYSSH = [sys.executable, "-c",
         "from protocol.cli import pyssh_main; raise SystemExit(pyssh_main())"]
#: The lines compared: those of the keywords this part of pyssh handles (identityfile's
#: defaults differ between OpenSSH 9 and 10, so it is left out).
MINE = frozenset((
    "host", "user", "hostname", "port", "batchmode", "identitiesonly", "identityagent",
    "bindaddress", "hashknownhosts", "kbdinteractiveauthentication", "kbdinteractivedevices",
    "passwordauthentication", "pubkeyauthentication", "updatehostkeys",
    "numberofpasswordprompts", "preferredauthentications", "certificatefile",
    "addkeystoagent", "proxycommand", "proxyjump", "canonicalizefallbacklocal",
    "canonicalizehostname", "canonicalizemaxdots", "canonicaldomains",
    "userknownhostsfile", "globalknownhostsfile"))

CONFIG = """\
Host a
  PasswordAuthentication no
  KbdInteractiveAuthentication no
  NumberOfPasswordPrompts 1
  PreferredAuthentications password,publickey
  PubkeyAuthentication no
  CertificateFile ~/c1-cert.pub
  CertificateFile /tmp/%h-cert.pub
  IdentityAgent ~/agent.sock
  AddKeysToAgent yes
  ProxyCommand nc -X connect -x 'proxy:8080' %h %p # not a comment
  HashKnownHosts yes
  UpdateHostKeys ask
  BindAddress 127.0.0.1
Host b
  ProxyJump u@j1:2222,j2
  AddKeysToAgent confirm
  IdentityAgent none
  UpdateHostKeys no
  ChallengeResponseAuthentication no
Host 127.0.0.1
  Port 2222
Host canon
  CanonicalizeHostname yes
  CanonicalDomains none.invalid
  CanonicalizeMaxDots 0
  HostName 127.1
Match final host 127.0.0.1
  User finaluser
Host c
  ProxyCommand none
  ProxyJump none
  IdentityAgent SSH_AUTH_SOCK
  PubkeyAuthentication unbound
"""


def dumps(args: list[str], tmp_path: Path) -> tuple[list[str], list[str]]:
    env = base_env(tmp_path)
    real = run([tool_path("ssh"), "-G", *args], env=env)
    ours = run([*PYSSH, "-G", *args], env=env, cwd=REPO_ROOT)
    assert real.returncode == 0, real.stderr
    assert ours.returncode == 0, ours.stderr
    keys = MINE & set(DUMPED_KEYS)
    pick = lambda text: [ln for ln in text.splitlines()  # noqa: E731
                         if ln.split(" ", 1)[0] in keys]
    return pick(real.stdout), pick(ours.stdout)


@pytest.mark.parametrize("args", [
    ["a"], ["b"], ["c"],
    ["-J", "u@x:22,[::1]:2200", "y"],
    ["-o", "ProxyJump=x", "-o", "ProxyCommand=foo", "y"],
    ["-o", "ProxyCommand=ssh -W '%h:%p' x", "-o", "UserKnownHostsFile=~/.ssh/known_hosts", "y"],
    ["-o", "UserKnownHostsFile=/elsewhere", "-o", "BatchMode=yes", "y"],
    ["-b", "127.0.0.2", "-o", "NumberOfPasswordPrompts=5", "y"],
    # CanonicalizeHostname: address literals always take their canonical form; with
    # canonicalization on, the files are read again with the new name.
    ["127.1"], ["canon"], ["-o", "CanonicalizeHostname=always", "-J", "x", "canon"],
    ["-o", "CanonicalizeMaxDots=2", "canon"],
    ["Canon"], ["A"],  # Host patterns match the name as typed, case-sensitively
    ["-o", "KbdInteractiveDevices=pam,bsdauth", "-o", "IdentityAgent=$SOCK", "y"],
    ["-o", "HostName=127.000.000.001", "final"],
])
def test_dump_matches_ssh(args: list[str], tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(CONFIG)
    real, ours = dumps(["-F", str(config), *args], tmp_path)
    assert ours == real


def test_bad_values_fail_as_ssh(tmp_path: Path) -> None:
    for option in ("ProxyJump=a:b:c:99999", "NumberOfPasswordPrompts=x",
                   "PasswordAuthentication=maybe"):
        env = base_env(tmp_path)
        real = run([tool_path("ssh"), "-G", "-F", "/dev/null", "-o", option, "h"], env=env)
        ours = run([*PYSSH, "-G", "-F", "/dev/null", "-o", option, "h"], env=env, cwd=REPO_ROOT)
        assert real.returncode == ours.returncode == 255, (option, ours.stderr)


def test_parse_jump() -> None:
    assert parse_hop("u@h:2") == Hop("u", "h", 2)
    assert parse_hop("[::1]:22") == Hop(None, "::1", 22)
    assert parse_hop("ssh://u@h:3") == Hop("u", "h", 3)
    assert parse_hop("h:0") is None and parse_hop("@h") is None and parse_hop("") is None
    jump = parse_jump("a,u@b:2200")
    assert isinstance(jump, Jump)
    assert jump.last == Hop("u", "b", 2200) and jump.extra == "a"
    assert parse_jump("none") == "none"
    assert parse_jump("a,,b") is None


def test_jump_command_as_ssh_builds_it() -> None:
    jump = parse_jump("first,u@last:2200")
    assert isinstance(jump, Jump)
    command = jump_command(jump, config_file="/cfg", verbose=2)
    assert command.endswith(" -l u -p 2200 -J first -F /cfg -vv -W '[%h]:%p' last")
