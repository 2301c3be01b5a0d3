"""pyadd drives OpenSSH's real ssh-agent exactly as ssh-add does.

Each case runs the real ssh-add and then pyadd with the same arguments, files and
input against the same fresh ssh-agent, and compares exit status, stdout, stderr (with
the "Lifetime set to" value read as seconds: its format changed in OpenSSH 10) and the
identities the agent holds afterwards (listed by the real ssh-add -L).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TESTDATA, openssh_version, run, tool_path
from tests.interop.pyadd_support import (
    PYADD,
    RunningAgent,
    lifetime_seconds,
    normalise,
    openssh_agent,
    pyadd,
    ssh_add,
)

PASSPHRASE = "correct horse"


def keygen(*args: str) -> None:
    done = run([tool_path("ssh-keygen"), "-q", *args])
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys of each type (one RSA generation only), encrypted ones, certificates."""
    d = tmp_path_factory.mktemp("keys")
    keygen("-t", "ed25519", "-N", "", "-C", "ed comment", "-f", str(d / "ed"))
    keygen("-t", "ecdsa", "-N", "", "-C", "", "-f", str(d / "ec"))
    keygen("-t", "rsa", "-b", "2048", "-N", "", "-C", "rsa comment", "-f", str(d / "rsa"))
    keygen("-t", "ed25519", "-a", "2", "-N", PASSPHRASE, "-C", "locked", "-f", str(d / "enc"))
    keygen("-t", "ecdsa", "-a", "2", "-N", PASSPHRASE, "-C", "locked2", "-f", str(d / "enc2"))
    for name in ("rsa_1", "ecdsa_1", "ecdsa_n", "ed25519_1"):  # PEM and openssh-key-v1
        src = TESTDATA / "sshkey" / name
        (d / name).write_bytes(src.read_bytes())
        (d / name).chmod(0o600)
        if src.with_name(name + ".pub").exists():
            shutil.copy(src.with_name(name + ".pub"), d / f"{name}.pub")
    keygen("-t", "ed25519", "-N", "", "-C", "ca", "-f", str(d / "ca"))
    keygen("-t", "ed25519", "-N", "", "-C", "certified", "-f", str(d / "cert"))
    keygen("-s", str(d / "ca"), "-I", "certificate id", "-n", "user", "-V", "-1h:+1h",
           str(d / "cert.pub"))
    keygen("-t", "ed25519", "-N", "", "-C", "old", "-f", str(d / "old"))
    keygen("-s", str(d / "ca"), "-I", "expired id", "-n", "user", "-V", "20000101:20010101",
           str(d / "old.pub"))
    for f in d.iterdir():
        if not f.name.endswith(".pub"):
            f.chmod(0o600)
    return d


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[RunningAgent]:
    with openssh_agent(tmp_path / "agent") as running:
        yield running


def held(agent: RunningAgent) -> str:
    return str(ssh_add(["-L"], agent.env()).stdout)


def clear(agent: RunningAgent) -> None:
    ssh_add(["-D"], agent.env())


def compare(agent: RunningAgent, args: list[str], cwd: Path, input: str | None = None,
            env: dict[str, str] | None = None, setup: list[str] | None = None,
            ) -> tuple[Any, Any]:
    """Run ssh-add then pyadd on the same state; everything visible must be equal."""
    results = []
    for tool in (ssh_add, pyadd):
        clear(agent)
        if setup:
            assert ssh_add(setup, agent.env(), cwd=cwd).returncode == 0
        done = tool(args, {**agent.env(), **(env or {})}, cwd=cwd, input=input)
        results.append((done, held(agent)))
    (theirs, their_keys), (ours, our_keys) = results
    assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout
    assert normalise(ours.stderr) == normalise(theirs.stderr)
    assert our_keys == their_keys
    return theirs, ours


# -- listing and exit statuses -------------------------------------------------------------


def test_empty_agent(agent: RunningAgent, keys: Path) -> None:
    for args in (["-l"], ["-L"], ["-E", "md5", "-l"], ["-D"], ["-d", "ed"]):
        compare(agent, args, keys)


def test_no_agent(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    for args in (["-l"], ["-Z"], []):
        theirs, ours = ssh_add(args, env), pyadd(args, env)
        assert (ours.returncode, ours.stdout, ours.stderr) == \
            (theirs.returncode, theirs.stdout, theirs.stderr)
    env["SSH_AUTH_SOCK"] = str(tmp_path / "missing.sock")
    theirs, ours = ssh_add(["-l"], env), pyadd(["-l"], env)
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == \
        (2, "Error connecting to agent: No such file or directory\n")


@pytest.mark.parametrize("args", [
    ["ed"], ["ec"], ["rsa"], ["rsa_1"], ["ecdsa_1"], ["ecdsa_n"], ["ed25519_1"],
    ["ed", "ec", "rsa"], ["-q", "ed"], ["-k", "ed"], ["-c", "ed"], ["-t", "90", "ed"],
    ["-t", "1h30m", "-c", "ec"], ["-t", "2d", "ed"], ["-t", "3w", "ed"], ["-t", "bad", "ed"],
    ["missing"], ["ed.pub"], ["-E", "nope", "ed"], ["-l", "-L"], ["-x", "-X"], ["-D", "-l"],
    ["ed", "-l"], ["-T"], ["-s"],
], ids=lambda a: " ".join(a))
def test_add(agent: RunningAgent, keys: Path, args: list[str]) -> None:
    compare(agent, args, keys)


def test_list_formats(agent: RunningAgent, keys: Path) -> None:
    for args in (["-l"], ["-L"], ["-E", "md5", "-l"], ["-E", "sha256", "-l"]):
        compare(agent, args, keys, setup=["ed", "ec", "rsa", "rsa_1"])


def test_open_permissions_refused(agent: RunningAgent, keys: Path, tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    shutil.copy(keys / "ed", loose)
    loose.chmod(0o644)
    compare(agent, [str(loose)], keys)


def test_key_from_stdin(agent: RunningAgent, keys: Path) -> None:
    compare(agent, ["-"], keys, input=(keys / "ed").read_text())
    compare(agent, ["-"], keys, input="garbage\n")


# -- passphrases ----------------------------------------------------------------------------


def test_passphrase_from_stdin(agent: RunningAgent, keys: Path) -> None:
    compare(agent, ["enc"], keys, input=PASSPHRASE + "\n")
    compare(agent, ["enc"], keys, input="wrong\n" + PASSPHRASE + "\n")
    compare(agent, ["-c", "enc"], keys, input="wrong\nwrong again\n")
    compare(agent, ["enc"], keys, input="")
    # the passphrase that worked is tried on the next file first
    compare(agent, ["enc", "enc2", "ed"], keys, input=PASSPHRASE + "\n")


def test_passphrase_from_askpass(agent: RunningAgent, keys: Path, tmp_path: Path) -> None:
    script = tmp_path / "askpass"
    log = tmp_path / "prompts"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> {log}\n'
                      f'case "$1" in *again*) echo "{PASSPHRASE}";; *) echo wrong;; esac\n')
    script.chmod(0o755)
    prompts = []
    for env in ({"SSH_ASKPASS": str(script), "SSH_ASKPASS_REQUIRE": "force"},
                {"SSH_ASKPASS": str(script), "DISPLAY": ":99"}):
        for tool in (ssh_add, pyadd):
            clear(agent)
            log.write_text("")
            done = tool(["enc"], {**agent.env(), **env}, cwd=keys)
            assert done.returncode == 0, done.stderr
            prompts.append(log.read_text())
    assert prompts[0] == prompts[1] == prompts[2] == prompts[3]
    assert prompts[0] == "Enter passphrase for enc: \nBad passphrase, try again for enc: \n"
    # SSH_ASKPASS_REQUIRE=never: no askpass, the prompt reads stdin
    compare(agent, ["enc"], keys, input=PASSPHRASE + "\n",
            env={"SSH_ASKPASS": str(script), "SSH_ASKPASS_REQUIRE": "never", "DISPLAY": ":9"})


def _converse(command: list[str], cwd: Path, env: dict[str, str],
              answers: list[bytes]) -> tuple[int, bytes]:
    """Run ``command`` with a pty as its controlling terminal; answer each new prompt
    (a ": " that appears after the last answer). Never waits more than 30 seconds."""
    import pty
    import select
    import signal

    pid, fd = pty.fork()
    if pid == 0:  # child
        try:
            os.chdir(cwd)
            os.execve(command[0], [*command], env)
        finally:
            os._exit(127)
    output = b""
    answered_at = 0
    pending = list(answers)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            if pending and output.find(b": ", answered_at) >= 0:
                answered_at = len(output)
                time.sleep(0.05)  # let the prompt's tcsetattr (TCSAFLUSH) finish
                os.write(fd, pending.pop(0))
    finally:
        os.close(fd)
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


def test_passphrase_on_terminal(agent: RunningAgent, keys: Path) -> None:
    """With a controlling terminal the prompt goes to it, echo off; same transcript."""
    transcripts = []
    for command in ([tool_path("ssh-add"), "enc"], [*PYADD, "enc"]):
        clear(agent)
        code, output = _converse(command, keys, agent.env(),
                                 [b"wrong\n", PASSPHRASE.encode() + b"\n"])
        assert code == 0, output
        transcripts.append(output.decode())
        assert held(agent)
    assert transcripts[0] == transcripts[1]
    assert "Bad passphrase, try again for enc: " in transcripts[0]
    assert PASSPHRASE not in transcripts[0] and "wrong" not in transcripts[0]


# -- removing --------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["-d", "ed"], ["-d", "ed.pub"], ["-d", "ed", "ec"], ["-d", "rsa"], ["-q", "-d", "ed"],
    ["-d", "missing"], ["-d", "ed25519_1"], ["-D"], ["-q", "-D"], ["-d", "cert"],
    ["-k", "-d", "cert"],
], ids=lambda a: " ".join(a))
def test_delete(agent: RunningAgent, keys: Path, args: list[str]) -> None:
    compare(agent, args, keys, setup=["-N", "ed", "ec", "cert"] if _has_n() else
            ["ed", "ec", "cert"])


def test_delete_from_stdin(agent: RunningAgent, keys: Path) -> None:
    lines = "# comment\n\n" + (keys / "ed.pub").read_text() + "not a key\n" + \
        (keys / "rsa.pub").read_text()
    compare(agent, ["-d", "-"], keys, input=lines, setup=["ed", "ec"])


def _has_n() -> bool:
    return openssh_version() >= (10, 1)


# -- locking ---------------------------------------------------------------------------------


def test_lock_and_unlock(agent: RunningAgent, keys: Path) -> None:
    """-x asks twice, -X once (from stdin here); a locked agent lists nothing."""
    seen = []
    for tool in (ssh_add, pyadd):
        clear(agent)
        ssh_add(["ed"], agent.env(), cwd=keys)
        run_ = []
        for args, answer in ((["-x"], "pw\nother\n"), (["-x"], ""), (["-x"], "pw\npw\n"),
                             (["-l"], None), (["-x"], "pw\npw\n"), (["-X"], "nope\n"),
                             (["-X"], "pw\n"), (["-X"], "pw\n")):
            done = tool(args, agent.env(), input=answer)
            run_.append((done.returncode, done.stdout, done.stderr, held(agent)))
        seen.append(run_)
        ssh_add(["-X"], agent.env(), input="pw\n")
    assert seen[0] == seen[1]
    assert seen[0][2][:3] == (0, "", "Enter lock password: Again: Agent locked.\n")


# -- signing test (-T) ------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["-T", "ed.pub"], ["-T", "rsa.pub", "ec.pub"],
                                  ["-T", "missing.pub"], ["-T", "ed.pub", "rsa_1.pub"],
                                  ["-T", "cert-cert.pub"]], ids=lambda a: " ".join(a))
def test_test_signing(agent: RunningAgent, keys: Path, args: list[str]) -> None:
    compare(agent, args, keys, setup=["ed", "ec", "rsa", "cert"])


# -- certificates ----------------------------------------------------------------------------


def test_certificate_added_with_key(agent: RunningAgent, keys: Path) -> None:
    """Key and certificate. OpenSSH before 10.1 has no -N and no lifetime coupling, so
    its plain add is what pyadd -N must do."""
    if _has_n():
        _, ours = compare(agent, ["-N", "cert"], keys)
    else:
        clear(agent)
        theirs = ssh_add(["cert"], agent.env(), cwd=keys)
        their_keys = held(agent)
        clear(agent)
        ours = pyadd(["-N", "cert"], agent.env(), cwd=keys)
        assert (ours.returncode, ours.stdout, ours.stderr) == \
            (theirs.returncode, theirs.stdout, theirs.stderr)
        assert held(agent) == their_keys
    assert "Certificate added: cert-cert.pub (certificate id)" in ours.stderr
    for args in (["-k", "cert"], ["-l"], ["-L"], ["-t", "60", "-c", "-k", "cert"]):
        compare(agent, args, keys, setup=["-k", "ed"])


def test_certificate_lifetime_follows_expiry(agent: RunningAgent, keys: Path) -> None:
    """OpenSSH 10.1: without -N the certificate leaves the agent 5 minutes after it
    expires; an expired certificate is not added."""
    from keytools.keyfile import load_public

    cert, _ = load_public(str(keys / "cert-cert.pub"))
    expected = cert.valid_before + 300 - int(time.time())  # type: ignore[attr-defined]
    done = pyadd(["cert"], agent.env(), cwd=keys)
    lines = done.stderr.splitlines()
    assert lines[:2] == ["Identity added: cert (certified)",
                         "Certificate added: cert-cert.pub (certificate id)"]
    assert abs(lifetime_seconds(lines[2].removeprefix("Lifetime set to ")) - expected) <= 5
    # a shorter -t wins
    done = pyadd(["-t", "60", "cert"], agent.env(), cwd=keys)
    assert done.stderr.splitlines()[1:] == [
        "Lifetime set to 00:01:00", "Certificate added: cert-cert.pub (certificate id)",
        "Lifetime set to 00:01:00"]
    clear(agent)
    done = pyadd(["old"], agent.env(), cwd=keys)
    assert done.returncode == 0
    assert done.stderr == ("Identity added: old (old)\n"
                           "Certificate old-cert.pub has already expired; ignored\r\n")
    assert len(held(agent).splitlines()) == 1
    clear(agent)
    assert pyadd(["-N", "old"], agent.env(), cwd=keys).returncode == 0
    assert len(held(agent).splitlines()) == 2


def test_certificate_only(agent: RunningAgent, keys: Path) -> None:
    """-C (OpenSSH 10) adds only the certificate, -C -d removes only certificates."""
    done = pyadd(["-C", "-N", "cert"], agent.env(), cwd=keys)
    assert (done.returncode, done.stderr) == \
        (0, "Certificate added: cert-cert.pub (certificate id)\n")
    listed = held(agent).splitlines()
    assert len(listed) == 1 and listed[0].startswith("ssh-ed25519-cert-v01@openssh.com ")
    assert pyadd(["-k", "cert"], agent.env(), cwd=keys).returncode == 0
    done = pyadd(["-C", "-d", "cert"], agent.env(), cwd=keys)
    assert done.stderr == ("Identity removed: cert-cert.pub ED25519-CERT (certified)\n")
    listed = held(agent).splitlines()
    assert len(listed) == 1 and listed[0].startswith("ssh-ed25519 ")


# -- destination constraints -------------------------------------------------------------------


def test_destination_constraints(agent: RunningAgent, keys: Path, tmp_path: Path) -> None:
    import base64
    import hashlib
    import hmac

    salt = os.urandom(20)
    digest = hmac.new(salt, b"hashed.example", hashlib.sha1).digest()
    hashed = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
    kh = tmp_path / "known_hosts"
    kh.write_text(
        f"alpha,192.0.2.1 {(keys / 'ca.pub').read_text()}"
        f"@cert-authority *.example.org {(keys / 'ed.pub').read_text()}"
        f"@revoked beta {(keys / 'ec.pub').read_text()}"
        f"{hashed} {(keys / 'rsa.pub').read_text()}"
        f"!gamma,g* {(keys / 'ec.pub').read_text()}"
        "broken line\n"
    )
    for spec in (["-h", "alpha"], ["-h", "bob@alpha"], ["-h", "alpha>carol@x.example.org"],
                 ["-h", "[alpha]", "-h", "hashed.example"], ["-h", "dave@"],
                 ["-h", "gx"], ["-h", "gamma"], ["-h", "beta"], ["-h", "nowhere"],
                 ["-h", ""], ["-h", "bob@alpha>hashed.example"], ["-h", "ALPHA"]):
        compare(agent, ["-H", str(kh), *spec, "ed"], keys)


# -- default identities ------------------------------------------------------------------------


def test_default_identities(agent: RunningAgent, keys: Path, tmp_path: Path) -> None:
    """No arguments: ~/.ssh/id_* from the password database's home (nss_wrapper gives the
    test its own passwd entry, so the real home is never read)."""
    wrapper = next((p for p in ("/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
                                "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so",
                                "/usr/lib/libnss_wrapper.so") if os.path.exists(p)), None)
    if wrapper is None:
        pytest.skip("libnss-wrapper is not installed")
    home = tmp_path / "home"
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(parents=True)
    passwd = tmp_path / "passwd"
    group = tmp_path / "group"
    passwd.write_text(f"tester:x:{os.getuid()}:{os.getgid()}:tester:{home}:/bin/sh\n")
    group.write_text(f"tester:x:{os.getgid()}:\n")
    env = {"LD_PRELOAD": wrapper, "NSS_WRAPPER_PASSWD": str(passwd),
           "NSS_WRAPPER_GROUP": str(group)}
    compare(agent, [], keys, env=env)  # no keys: exit 1
    compare(agent, ["-d"], keys, env=env)
    for src, name in (("rsa", "id_rsa"), ("ec", "id_ecdsa"), ("ed", "id_ed25519"),
                      ("enc", "unused")):
        shutil.copy(keys / src, ssh_dir / name)
        shutil.copy(keys / f"{src}.pub", ssh_dir / f"{name}.pub")
        (ssh_dir / name).chmod(0o600)
    shutil.copy(keys / "ed", ssh_dir / "id_ecdsa_sk")  # not a FIDO key; must still load
    (ssh_dir / "id_ecdsa_sk").chmod(0o600)
    compare(agent, [], keys, env=env)
    compare(agent, ["-d"], keys, env=env, setup=[str(ssh_dir / "id_rsa")])


# -- PKCS#11 messages without a token -----------------------------------------------------------


def test_card_errors(agent: RunningAgent, keys: Path) -> None:
    compare(agent, ["-s", "/nonexistent/provider.so"], keys, input="1234\n")
    compare(agent, ["-e", "/nonexistent/provider.so"], keys)


def test_not_supported_fido(agent: RunningAgent, keys: Path) -> None:
    for args in (["-K"], ["-S", "/usr/lib/provider.so", "ed"]):
        done = pyadd(args, agent.env(), cwd=keys)
        assert done.returncode == 1
        assert "not supported" in done.stderr


def test_query_extensions(agent: RunningAgent) -> None:
    """-Q lists what the agent answers to the "query" extension, one name a line."""
    done = pyadd(["-Q"], agent.env())
    if done.returncode == 0:
        assert "session-bind@openssh.com" in done.stdout.split()
    else:
        assert done.stderr.startswith("Failed to query agent extensions: ")
