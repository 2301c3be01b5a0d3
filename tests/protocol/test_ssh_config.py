"""pyssh's ssh_config reading and command line: unit tests, and ``pyssh -G`` against the
real ``ssh -G`` on the same files and arguments (for the keys pyssh supports)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from protocol.ssh_cli import UsageError, parse_args, split_destination
from protocol.ssh_config import (
    DUMPED_KEYS,
    ConfigContext,
    ConfigError,
    SshConfig,
    expand_tokens,
    finish,
    match_host_block,
    split_line,
)
from tests.agent.agentproc import base_env
from tests.helpers import REPO_ROOT, run, tool_path

PYSSH = [sys.executable, "-c",
         "from protocol.cli import pyssh_main; raise SystemExit(pyssh_main())"]


def read(text: str, host: str, tmp_path: Path, user: str = "me") -> SshConfig:
    path = tmp_path / "config"
    path.write_text(text)
    config = SshConfig()
    ctx = ConfigContext(host=host, original_host=host, local_user=user)
    config.read_file(str(path), ctx, user_file=True)
    return config


def test_first_value_wins_and_identity_files_accumulate(tmp_path: Path) -> None:
    config = read("Host a*\n  Port 2200\n  IdentityFile one\nHost *\n  Port 22\n"
                  "  User zed\n  IdentityFile two\n", "abc", tmp_path)
    assert config.get("port") == "2200"
    assert config.get("user") == "zed"
    assert config.identity_files == ["one", "two"]


def test_host_negation_and_equals_syntax(tmp_path: Path) -> None:
    config = read("Host *.example.com !bad.example.com\n  User=good\nHost *\n  User other\n",
                  "bad.example.com", tmp_path)
    assert config.get("user") == "other"
    assert match_host_block(["*.example.com"], "x.example.com")
    assert not match_host_block(["!x.example.com", "*"], "x.example.com")


def test_match_criteria(tmp_path: Path) -> None:
    text = ("Match host 10.*\n  User m1\nMatch user m1\n  Port 99\n"
            "Match !localuser me\n  ConnectTimeout 3\nMatch all\n  BatchMode yes\n")
    config = read(text, "10.1.2.3", tmp_path)
    assert (config.get("user"), config.get("port"), config.get("batchmode")) == \
        ("m1", "99", "yes")
    assert config.get("connecttimeout") is None


def test_include_glob(tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "b.conf").write_text("User fromb\n")
    (tmp_path / "inc" / "a.conf").write_text("Port 2022\n")
    config = read(f"Host h\n  Include {tmp_path}/inc/*.conf\n", "h", tmp_path)
    assert (config.get("user"), config.get("port")) == ("fromb", "2022")


def test_bad_option_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 1: Bad configuration option: frobnicate"):
        read("Frobnicate yes\n", "h", tmp_path)
    config = SshConfig()
    ctx = ConfigContext(host="h", original_host="h", local_user="me")
    config.apply("VerifyHostKeyDNS", ["no"], "command-line line 0", ctx)
    assert ctx.warnings == ['command-line line 0: Unsupported option "VerifyHostKeyDNS"']
    with pytest.raises(ConfigError, match="Bad port"):
        config.apply("Port", ["22x"], "x line 1", ctx)


def test_tokens() -> None:
    assert expand_tokens("%h-%p-%r-%%", {"h": "host", "p": "22", "r": "u"}) == "host-22-u-%"
    with pytest.raises(ConfigError):
        expand_tokens("%z", {})
    assert split_line('IdentityFile "/a b/c" # comment', "x") == ("IdentityFile", ["/a b/c"])


def test_finish_expands(tmp_path: Path) -> None:
    config = read("Host s\n  HostName %h.example\n  User bob\n  Port 2222\n"
                  "  UserKnownHostsFile /kh/%h_%p_%r\n", "s", tmp_path)
    r = finish(config, "s", "s")
    assert (r.hostname, r.port, r.user) == ("s.example", 2222, "bob")
    assert r.user_known_hosts == ("/kh/s.example_2222_bob",)


def test_command_line() -> None:
    args = parse_args(["-p", "2200", "-vv", "alice@h", "-l", "bob", "ls", "-l"])
    assert (args.port, args.verbose, args.login, args.destination, args.command) == \
        ("2200", 2, "bob", "alice@h", ["ls", "-l"])
    args = parse_args(["-oUser=x", "-i", "k", "-46nNTqG", "h", "--", "-x"])
    assert args.options[:2] == [("-o", "User=x"), ("IdentityFile", "k")]
    assert args.command == ["-x"]
    with pytest.raises(UsageError):
        parse_args(["-Z", "h"])
    with pytest.raises(UsageError):
        parse_args([])
    assert split_destination("ssh://u@h:2022") == ("u", "h", "2022")
    assert split_destination("a@b@c") == ("a@b", "c", None)


# -- -G against the real ssh -G -----------------------------------------------------------


#: ssh -G's algorithm lines and the ``ssh -Q`` query naming what the real ssh has
ALGORITHM_QUERIES = {"ciphers": "cipher", "macs": "mac", "kexalgorithms": "kex",
                     "hostkeyalgorithms": "HostKeyAlgorithms",
                     "pubkeyacceptedalgorithms": "HostKeyAlgorithms",
                     "casignaturealgorithms": "HostKeyAlgorithms"}


def _pyssh_names(keyword: str) -> set[str]:
    from protocol.ciphers import CIPHERS, MACS
    from protocol.kex import METHODS
    from protocol.kex.kexinit import DEFAULT_HOST_KEY_ALGORITHMS

    return set({"ciphers": CIPHERS, "macs": MACS, "kexalgorithms": METHODS}.get(
        keyword, DEFAULT_HOST_KEY_ALGORITHMS))


def _common_algorithms(real: list[str], ours: list[str]) -> tuple[list[str], list[str]]:
    """The algorithm lines differ where the implementations differ, and only there: ssh
    lists algorithms pyssh lacks (sntrup761, umac, security-key host keys) and pyssh's
    defaults are OpenSSH 10's (mlkem768x25519-sha256, which a 9.x ssh lacks). Drop from
    each side only the names the other side does not implement (``ssh -Q`` for the real
    one), so the order and everything else is still compared name by name."""
    def strip(lines: list[str], keep: dict[str, set[str]]) -> list[str]:
        out = []
        for line in lines:
            key, _, value = line.partition(" ")
            if key in keep:
                value = ",".join(n for n in value.split(",") if n in keep[key])
            out.append(f"{key} {value}")
        return out

    theirs = {k: set(run([tool_path("ssh"), "-Q", q]).stdout.split())
              for k, q in ALGORITHM_QUERIES.items()}
    mine = {k: _pyssh_names(k) for k in ALGORITHM_QUERIES}
    return strip(real, mine), strip(ours, theirs)


def _no_notice(stderr: str) -> str:
    """ssh -G also says whether it would allocate a tty; pyssh -G does not (yet)."""
    return stderr.replace("Pseudo-terminal will not be allocated because stdin is not a "
                          "terminal.\r\n", "")


def dump_pair(args: list[str], tmp_path: Path,
              env_extra: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    env = {**base_env(tmp_path), **(env_extra or {})}
    real = run([tool_path("ssh"), "-G", *args], env=env)
    ours = run([*PYSSH, "-G", *args], env=env, cwd=REPO_ROOT)
    assert real.returncode == 0, real.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stderr == _no_notice(real.stderr)
    wanted = [line for line in real.stdout.splitlines()
              if line.split(" ", 1)[0] in DUMPED_KEYS]
    return _common_algorithms(wanted, ours.stdout.splitlines())


@pytest.mark.parametrize("case", ["plain", "flags", "config", "match"])
def test_dump_matches_ssh(case: str, tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    config.write_text(
        "Host Alias\n  HostName 127.0.0.1\n  Port 2222\n  User bob\n"
        "  IdentityFile ~/.ssh/key_%h\n  IdentitiesOnly yes\n  StrictHostKeyChecking accept-new\n"
        f"  UserKnownHostsFile {tmp_path}/kh_%h_%p_%r\n  GlobalKnownHostsFile /dev/null\n"
        "  ConnectTimeout 7\n  LogLevel verbose\n  BatchMode yes\n"
        "Host *\n  IdentityFile /etc/x\n  User nobody\n")
    matching = tmp_path / "matching"
    matching.write_text(
        "Match originalhost short exec \"test %h = short\"\n  HostName 127.0.0.9\n"
        "Match exec false\n  Port 1111\nMatch final host 127.0.0.9\n  Port 2345\n"
        "Match user !root\n  ConnectTimeout 4\nMatch user root\n  ConnectTimeout 9\n"
        "Match host 127.0.0.9 !localuser nobody\n  IdentityFile /m/%h-%r\n"
        "Host *\n  IdentityFile /m/%h-%r\n  IdentityFile /m/two\n")
    cases = {
        "plain": ["-F", "/dev/null", "-o", "IdentityFile=/k1", "Some.Host"],
        "flags": ["-F", "/dev/null", "-p", "2200", "-l", "carol", "-i", str(config), "-4", "-q",
                  "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=~/kh %d/x",
                  "h"],
        "config": ["-F", str(config), "Alias"],
        "match": ["-F", str(matching), "-l", "root", "short"],
    }
    real, ours = dump_pair(cases[case], tmp_path)
    assert ours == real


@pytest.mark.parametrize("args", [
    ["-A"], ["-a"], ["-A", "-a"], ["-a", "-A"],
    ["-o", "ForwardAgent=no", "-A"], ["-A", "-o", "ForwardAgent=no"],
    ["-a", "-o", "ForwardAgent=yes"], ["-o", "ForwardAgent=yes", "-a"],
    ["-o", "ForwardAgent=~/sock"], ["-o", "ForwardAgent=$FOO"],
    ["-o", "ForwardAgent=${FOO}/x"], ["-o", "ForwardAgent=/tmp/%h"],
    ["-o", "ForwardAgent=no", "-o", "ForwardAgent=/p"], ["-o", "ForwardAgent=/p", "-a"],
    ["-A", "-o", "IdentityAgent=/tmp/ia"],
])
def test_dump_forward_agent(args: list[str], tmp_path: Path) -> None:
    """ForwardAgent yes/no/path/$VAR/${VAR}/%h/~ as ssh -G prints it, -A/-a overriding
    any -o ForwardAgent as ssh.c's flags do, and ssh's "Cannot forward agent socket
    path" error for a missing socket (dump_pair compares stderr too)."""
    real, ours = dump_pair(["-F", "/dev/null", "-o", "IdentityFile=/k1", *args, "h"],
                           tmp_path, {"FOO": "bar"})
    assert ours == real
    assert any(line.startswith("forwardagent ") for line in ours)


@pytest.mark.parametrize("value", ["yes", "ask", "confirm", "5m", "confirm 1h", "0",
                                   "ask 5", "yes 5", "bogus", "confirm bogus", "-1"])
def test_add_keys_to_agent_values(value: str, tmp_path: Path) -> None:
    """AddKeysToAgent's forms (a bare time, "confirm <time>") and errors, as ssh -G."""
    env = base_env(tmp_path)
    args = ["-G", "-F", "/dev/null", "-o", f"AddKeysToAgent={value}", "h"]
    real = run([tool_path("ssh"), *args], env=env)
    ours = run([*PYSSH, *args], env=env, cwd=REPO_ROOT)
    assert (ours.returncode, ours.stderr) == (real.returncode, _no_notice(real.stderr))
    assert [ln for ln in ours.stdout.splitlines() if ln.startswith("addkeystoagent")] == \
        [ln for ln in real.stdout.splitlines() if ln.startswith("addkeystoagent")]


def test_forward_agent_config_errors(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    for text in ("ForwardAgent $BAD-NAME\n", "ForwardAgent ${X\n", "ForwardAgent ${NOPE}/x\n",
                 "ForwardAgent /p\n"):
        config = tmp_path / "cfg"
        config.write_text(text)
        args = ["-G", "-F", str(config), "-o", "ExitOnForwardFailure=yes", "h"]
        real = run([tool_path("ssh"), *args], env=env)
        ours = run([*PYSSH, *args], env=env, cwd=REPO_ROOT)
        assert (ours.returncode, ours.stderr) == (real.returncode, _no_notice(real.stderr))


@pytest.mark.parametrize("spec", [
    [], ["-o", "Ciphers=^aes256-ctr", "-o", "MACs=-hmac-sha1*"],
    ["-c", "aes128-ctr,chacha20-poly1305@openssh.com", "-m", "hmac-sha2-512"],
    ["-o", "KexAlgorithms=-ecdh*", "-o", "HostKeyAlgorithms=+ssh-ed25519"],
    ["-o", "HostKeyAlgorithms=rsa-sha2-256,ssh-ed25519", "-o", "KexAlgorithms=+curve25519-sha256"],
])
def test_dump_algorithms(spec: list[str], tmp_path: Path) -> None:
    """The algorithm lines (ssh's defaults or the lists as the specs assemble them), every
    one ssh -G prints (see _common_algorithms for the names only one side has)."""
    real, ours = dump_pair(["-F", "/dev/null", "-o", "IdentityFile=/k1", *spec, "h"], tmp_path)
    assert ours == real
    assert {line.split(" ")[0] for line in ours} >= set(ALGORITHM_QUERIES)


def test_known_host_algorithms_first(tmp_path: Path) -> None:
    from keytools.private import generate
    from protocol.hostkey_policy import order_host_key_algorithms

    key = generate("ecdsa", 256).public
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[h]:2222 {key.openssh()}\nother {generate('ed25519').public.openssh()}\n")
    offered = ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512")
    assert order_host_key_algorithms((str(kh),), "h", 2222, offered) == \
        ("ecdsa-sha2-nistp256", "ssh-ed25519", "rsa-sha2-512")
    assert order_host_key_algorithms((str(kh),), "h", 22, offered) == offered


def test_algorithm_list_syntax() -> None:
    from protocol.ssh_main import algorithm_list

    default = ("a", "b", "c")
    known = {"a", "b", "c", "d"}
    assert algorithm_list(None, default, known, "cipher") == default
    assert algorithm_list("d,a", default, known, "cipher") == ("d", "a")
    assert algorithm_list("+d", default, known, "cipher") == ("a", "b", "c", "d")
    assert algorithm_list("-b*,c", default, known, "cipher") == ("a",)
    assert algorithm_list("^c", default, known, "cipher") == ("c", "a", "b")
    with pytest.raises(ConfigError, match="Bad SSH2 cipher spec 'x'"):
        algorithm_list("x", default, known, "cipher")
