"""pykeygen with keys outside files: a CA key in an agent (-s -U), signing files with an
agent's key (-Y sign), and a PKCS#11 token (-D), side by side with the real ssh-keygen.

The agents are OpenSSH's ssh-agent and pyagent, the token is SoftHSM2 in a temporary
directory; every process is stopped by pid when its test ends, HOME is a temporary
directory. Certificates made through an agent or a token must be accepted by
``ssh-keygen -L`` (which checks the CA signature) and signatures by ``ssh-keygen -Y verify``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO_ROOT, run, tool_path
from tests.interop.pyadd_support import (
    TOKEN_PIN,
    RunningAgent,
    SoftToken,
    import_keys,
    openssh_agent,
    py_agent,
    softhsm_token,
)

PYKEYGEN = [sys.executable, "-m", "agent.keygen"]
KEYTOOLS_ONLY = [sys.executable, "-m", "keytools.cli.pykeygen"]
StartAgent = Callable[..., AbstractContextManager[RunningAgent]]
AGENTS = {"ssh-agent": openssh_agent, "pyagent": py_agent}


def ssh_keygen() -> str:
    return tool_path("ssh-keygen")


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """No agent, askpass or display of the user's; our HOME; the repository importable."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_ASKPASS", "SSH_ASKPASS_REQUIRE",
                        "DISPLAY", "WAYLAND_DISPLAY")}
    env["HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def both(args: list[str], env: dict[str, str], ours_dir: Path, theirs_dir: Path,
         input: str | None = None) -> tuple[Any, Any]:
    """Run pykeygen in ``ours_dir`` and ssh-keygen in ``theirs_dir`` on the same arguments.
    OpenSSH ends its logged lines with "\\r\\n"; that alone is not compared."""
    ours = run([*PYKEYGEN, *args], env=env, cwd=ours_dir, input=input)
    theirs = run([ssh_keygen(), *args], env=env, cwd=theirs_dir, input=input)
    assert "Traceback" not in ours.stderr, ours.stderr
    theirs.stderr = theirs.stderr.replace("\r\n", "\n")
    return ours, theirs


def same(ours: Any, theirs: Any) -> None:
    assert (ours.returncode, ours.stdout, ours.stderr) == \
        (theirs.returncode, theirs.stdout, theirs.stderr)


def listing(path: Path, env: dict[str, str]) -> str:
    """``ssh-keygen -L`` of a certificate; it refuses one whose CA signature is wrong."""
    done = run([ssh_keygen(), "-L", "-f", path.name], env=env, cwd=path.parent)
    assert done.returncode == 0, done.stderr
    return str(done.stdout)


def check_signature(path: Path) -> None:
    from keytools.certificate import Certificate
    from keytools.keyfile import load_public

    cert, _ = load_public(str(path))
    assert isinstance(cert, Certificate)
    cert.check_signature()


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CA keys (ed25519, ecdsa, rsa), a user key, and a directory of public halves only."""
    d = tmp_path_factory.mktemp("keys")
    for name, kind in (("ca", ["-t", "ed25519"]), ("caec", ["-t", "ecdsa"]),
                       ("carsa", ["-t", "rsa", "-b", "2048"]), ("user", ["-t", "ed25519"])):
        done = run([ssh_keygen(), "-q", *kind, "-N", "", "-C", f"{name} key", "-f",
                    str(d / name)])
        assert done.returncode == 0, done.stderr
    return d


@pytest.fixture
def dirs(tmp_path: Path, made: Path) -> tuple[Path, Path, Path]:
    """HOME, and one working directory per tool holding only public keys and a message."""
    home = tmp_path / "home"
    home.mkdir()
    pair = []
    for side in ("ours", "theirs"):
        work = tmp_path / side
        work.mkdir()
        for name in ("ca", "caec", "carsa", "user"):
            shutil.copy(made / f"{name}.pub", work / f"{name}.pub")
        (work / "msg").write_bytes(b"signed through an agent\n")
        pair.append(work)
    return home, pair[0], pair[1]


def add(agent: RunningAgent, env: dict[str, str], *keys: Path, confirm: bool = False) -> None:
    done = run([tool_path("ssh-add"), "-q", *(["-c"] if confirm else []), *map(str, keys)],
               env=env)
    assert done.returncode == 0, done.stderr


@pytest.fixture(params=sorted(AGENTS))
def agent(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningAgent]:
    """OpenSSH's ssh-agent or pyagent, stopped by pid when the test ends."""
    env = base_env(tmp_path)
    with AGENTS[request.param](tmp_path / "agent", env=env) as running:
        yield running


# -- -s ca.pub -U ----------------------------------------------------------------------------


def test_ca_in_agent_signs_like_ssh_keygen(agent: RunningAgent, made: Path,
                                           dirs: tuple[Path, Path, Path]) -> None:
    home, ours_dir, theirs_dir = dirs
    env = base_env(home, SSH_AUTH_SOCK=str(agent.socket))
    add(agent, env, made / "ca", made / "carsa")
    cases = [
        ["-s", "ca.pub", "-U", "-I", "agent id", "-n", "alice,bob", "-z", "7", "user.pub"],
        ["-s", "carsa.pub", "-U", "-I", "rsa", "-n", "alice", "-V", "20300101:20310101",
         "user.pub"],
        ["-s", "carsa.pub", "-U", "-t", "rsa-sha2-256", "-I", "rsa256", "-h", "-n", "h",
         "user.pub"],
    ]
    for args in cases:
        ours, theirs = both(args, env, ours_dir, theirs_dir)
        same(ours, theirs)
        assert ours.returncode == 0
        check_signature(ours_dir / "user-cert.pub")
        assert listing(ours_dir / "user-cert.pub", env) == \
            listing(theirs_dir / "user-cert.pub", env)


def test_ca_not_in_agent_fails_like_ssh_keygen(agent: RunningAgent, made: Path,
                                               dirs: tuple[Path, Path, Path]) -> None:
    home, ours_dir, theirs_dir = dirs
    sock = str(agent.socket)
    args = ["-s", "ca.pub", "-U", "-I", "x", "-n", "p", "user.pub"]
    steps: list[tuple[list[str], dict[str, str]]] = [
        (args, base_env(home, SSH_AUTH_SOCK=sock)),  # no identities at all
        (args, base_env(home)),  # no SSH_AUTH_SOCK
        (args, base_env(home, SSH_AUTH_SOCK=str(home / "absent.sock"))),
        (["-s", "missing.pub", *args[2:]], base_env(home, SSH_AUTH_SOCK=sock)),
        (["-s", "carsa.pub", "-U", "-t", "ssh-ed25519", "-I", "x", "user.pub"],
         base_env(home, SSH_AUTH_SOCK=sock)),
    ]
    for argv, env in steps:
        same(*both(argv, env, ours_dir, theirs_dir))
    add(agent, base_env(home, SSH_AUTH_SOCK=sock), made / "caec", made / "carsa")
    ours, theirs = both(args, base_env(home, SSH_AUTH_SOCK=sock), ours_dir, theirs_dir)
    same(ours, theirs)
    assert ours.returncode == 255 and "not found in agent" in ours.stderr
    assert not (ours_dir / "user-cert.pub").exists()


def test_agent_refusing_to_sign(tmp_path: Path, made: Path,
                                dirs: tuple[Path, Path, Path]) -> None:
    """A key added with -c and nobody to confirm: ssh-agent refuses every signature."""
    home, ours_dir, theirs_dir = dirs
    with openssh_agent(tmp_path / "agent", env=base_env(home)) as running:
        env = base_env(home, SSH_AUTH_SOCK=str(running.socket))
        add(running, env, made / "ca", confirm=True)
        for args in (["-s", "ca.pub", "-U", "-I", "x", "-n", "p", "user.pub"],
                     ["-Y", "sign", "-f", "ca.pub", "-n", "file", "msg"],
                     ["-Y", "sign", "-f", "ca.pub", "-n", "file", "-"]):
            ours, theirs = both(args, env, ours_dir, theirs_dir, input="data")
            same(ours, theirs)
            assert ours.returncode == 255


# -- -Y sign with the key in an agent --------------------------------------------------------


def test_sign_file_with_agent_key(agent: RunningAgent, made: Path,
                                  dirs: tuple[Path, Path, Path]) -> None:
    home, ours_dir, theirs_dir = dirs
    env = base_env(home, SSH_AUTH_SOCK=str(agent.socket))
    add(agent, env, made / "ca", made / "carsa")
    allowed = home / "allowed_signers"
    allowed.write_text("".join(f"signer {' '.join((made / f'{n}.pub').read_text().split()[:2])}\n"
                               for n in ("ca", "carsa")))
    for key, extra in (("ca.pub", []), ("carsa.pub", []), ("carsa.pub", ["-O", "hashalg=sha256"]),
                       ("ca.pub", ["-U"])):
        for work in (ours_dir, theirs_dir):
            (work / "msg.sig").unlink(missing_ok=True)
        args = [*extra, "-Y", "sign", "-f", key, "-n", "file", "msg"]
        same(*both(args, env, ours_dir, theirs_dir))
        verified = run([ssh_keygen(), "-Y", "verify", "-f", str(allowed), "-I", "signer", "-n",
                        "file", "-s", "msg.sig"], input="signed through an agent\n", env=env,
                       cwd=ours_dir)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert verified.stdout.startswith('Good "file" signature for signer with ')
    ours, theirs = both(["-Y", "sign", "-f", "carsa.pub", "-n", "file"], env, ours_dir,
                        theirs_dir, input="stdin data")
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == \
        (0, "Signing data on standard input\n")
    sig = home / "stdin.sig"
    sig.write_text(ours.stdout)
    checked = run([ssh_keygen(), "-Y", "check-novalidate", "-n", "file", "-s", str(sig)],
                  input="stdin data", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_sign_when_agent_lacks_the_key(agent: RunningAgent, made: Path,
                                       dirs: tuple[Path, Path, Path]) -> None:
    """Without -U ssh-keygen falls back to the private key file; with -U it gives up."""
    home, ours_dir, theirs_dir = dirs
    env = base_env(home, SSH_AUTH_SOCK=str(agent.socket))
    add(agent, env, made / "caec")
    for args, environ in ((["-U", "-Y", "sign", "-f", "user.pub", "-n", "f", "msg"], env),
                          (["-Y", "sign", "-f", "user.pub", "-n", "f", "msg"], env),
                          (["-U", "-Y", "sign", "-f", "user.pub", "-n", "f", "msg"],
                           base_env(home)),
                          (["-Y", "sign", "-f", "user.pub", "-n", "f", "msg"],
                           base_env(home, SSH_AUTH_SOCK=str(home / "absent.sock")))):
        ours, theirs = both(args, environ, ours_dir, theirs_dir)
        same(ours, theirs)
        assert ours.returncode == 255
    # the private key beside the public one: signed from the file, agent or not
    for work in (ours_dir, theirs_dir):
        shutil.copy(made / "user", work / "user")
        os.chmod(work / "user", 0o600)
    same(*both(["-Y", "sign", "-f", "user.pub", "-n", "f", "msg"], env, ours_dir, theirs_dir))
    assert (ours_dir / "msg.sig").exists()


# -- -D pkcs11 -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory, made: Path) -> SoftToken:
    tok = softhsm_token(tmp_path_factory.mktemp("hsm"))
    import_keys(tok, [(made / "carsa", "token rsa"), (made / "caec", "token ec")])
    return tok


def test_download_lists_like_ssh_keygen(token: SoftToken, dirs: tuple[Path, Path, Path]) -> None:
    """The token's keys, the same lines (SoftHSM may hand objects out in any order)."""
    home, ours_dir, theirs_dir = dirs
    env = base_env(home, **token.env())
    for extra in ([], ["-l"], ["-l", "-E", "md5"], ["-l", "-B"], ["-B"]):
        ours, theirs = both(["-D", token.module, *extra], env, ours_dir, theirs_dir)
        assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == (0, "")
        assert sorted(ours.stdout.splitlines()) == sorted(theirs.stdout.splitlines())
        assert len(ours.stdout.splitlines()) == 2


def test_download_refuses_what_is_not_a_provider(dirs: tuple[Path, Path, Path]) -> None:
    home, ours_dir, theirs_dir = dirs
    text = home / "not-a-library.so"
    text.write_text("hello\n")
    for provider in (str(home / "absent.so"), str(text), str(home)):
        ours, theirs = both(["-D", provider], base_env(home), ours_dir, theirs_dir)
        same(ours, theirs)
        assert ours.returncode == 255


def test_ca_on_token_signs_like_ssh_keygen(token: SoftToken,
                                           dirs: tuple[Path, Path, Path]) -> None:
    home, ours_dir, theirs_dir = dirs
    env = base_env(home, **token.env())
    for ca in ("carsa.pub", "caec.pub"):
        args = ["-s", ca, "-D", token.module, "-P", TOKEN_PIN, "-I", "token", "-n", "p",
                "user.pub"]
        ours, theirs = both(args, env, ours_dir, theirs_dir)
        same(ours, theirs)
        assert ours.returncode == 0
        check_signature(ours_dir / "user-cert.pub")
        assert listing(ours_dir / "user-cert.pub", env) == \
            listing(theirs_dir / "user-cert.pub", env)
    # a CA the token does not hold, and a CA public key that is not there at all
    for ca in ("ca.pub", "missing.pub"):
        args = ["-s", ca, "-D", token.module, "-P", TOKEN_PIN, "-I", "x", "user.pub"]
        same(*both(args, env, ours_dir, theirs_dir))


def test_token_pin_is_asked_when_signing(token: SoftToken, tmp_path: Path,
                                         dirs: tuple[Path, Path, Path]) -> None:
    """No -P: the PIN is asked (here from SSH_ASKPASS) once, when the token first signs."""
    home, ours_dir, theirs_dir = dirs
    log = tmp_path / "askpass.log"
    script = tmp_path / "askpass"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> {log}\necho "$PIN"\n')
    script.chmod(0o755)
    args = ["-s", "carsa.pub", "-D", token.module, "-I", "x", "-n", "p", "user.pub", "user.pub"]
    prompts = []
    for tool, work in ((PYKEYGEN, ours_dir), ([ssh_keygen()], theirs_dir)):
        env = base_env(home, **token.env(), SSH_ASKPASS=str(script),
                       SSH_ASKPASS_REQUIRE="force", PIN=TOKEN_PIN)
        done = run([*tool, *args], env=env, cwd=work)
        assert done.returncode == 0, done.stderr
        check_signature(work / "user-cert.pub")
        prompts.append(log.read_text())
        log.unlink()
    assert prompts[0] == prompts[1] == "Enter PIN for 't': \n"
    # a wrong PIN, and nobody to ask: both refuse and write nothing
    for pin_env in ({"SSH_ASKPASS": str(script), "SSH_ASKPASS_REQUIRE": "force",
                     "PIN": "0000"}, {}):
        for work in (ours_dir, theirs_dir):
            (work / "user-cert.pub").unlink(missing_ok=True)
        ours, theirs = both(args, base_env(home, **token.env(), **pin_env), ours_dir,
                            theirs_dir)
        assert ours.returncode == theirs.returncode == 255
        assert ours.stderr.splitlines()[-1] == theirs.stderr.splitlines()[-1]
        assert not (ours_dir / "user-cert.pub").exists()


def test_keytools_alone_has_no_agent_or_token(dirs: tuple[Path, Path, Path]) -> None:
    """``python -m keytools.cli.pykeygen`` is built without sources: it says so."""
    home, ours_dir, _ = dirs
    done = run([*KEYTOOLS_ONLY, "-D", "/usr/lib/softhsm/libsofthsm2.so"], env=base_env(home),
               cwd=ours_dir)
    assert done.returncode == 1 and "not implemented yet" in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
