"""Shared pieces for the pyadd and PKCS#11 tests: a real OpenSSH ssh-agent, a SoftHSM2
token in a temporary directory, and running ssh-add and pyadd side by side.

Every process started here is stopped by pid when its context manager or fixture ends.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run, stop_process, tool_path

PYADD = [sys.executable, "-m", "agent.pyadd"]
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_PIN = "1234"
SO_PIN = "5678"
_LIFETIME = re.compile(r"^Lifetime set to (.*)$", re.MULTILINE)


# -- agents -------------------------------------------------------------------------------


@dataclass
class RunningAgent:
    socket: Path
    proc: subprocess.Popen[bytes]

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment for a client of this agent (no display, no askpass)."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_ASKPASS",
                            "SSH_ASKPASS_REQUIRE", "DISPLAY", "WAYLAND_DISPLAY")}
        env["SSH_AUTH_SOCK"] = str(self.socket)
        env.update(extra)
        return env

    def stop(self) -> None:
        stop_process(self.proc)


def _wait_for_socket(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if path.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(f"agent exited with status {proc.returncode}")
        time.sleep(0.02)
    raise AssertionError("agent socket did not appear")


@contextmanager
def openssh_agent(directory: Path, *extra: str,
                  env: Mapping[str, str] | None = None) -> Iterator[RunningAgent]:
    """OpenSSH's ssh-agent in the foreground (-D) on a socket in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    sock = directory / "agent.sock"
    proc = subprocess.Popen([tool_path("ssh-agent"), "-D", "-a", str(sock), *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(env) if env else None,
                            start_new_session=True)
    agent = RunningAgent(sock, proc)
    try:
        _wait_for_socket(sock, proc)
        yield agent
    finally:
        agent.stop()


PYAGENT = [sys.executable, "-m", "agent.pyagent"]


@contextmanager
def py_agent(directory: Path, *extra: str,
             env: Mapping[str, str] | None = None) -> Iterator[RunningAgent]:
    """pyagent in the foreground (-D) on a socket in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    sock = directory / "pyagent.sock"
    proc = subprocess.Popen([*PYAGENT, "-D", "-a", str(sock), *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(env) if env else None,
                            start_new_session=True)
    agent = RunningAgent(sock, proc)
    try:
        _wait_for_socket(sock, proc)
        yield agent
    finally:
        agent.stop()


# -- running both tools -------------------------------------------------------------------


def ssh_add(args: list[str], env: Mapping[str, str], cwd: Path | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[Any]:
    return run([tool_path("ssh-add"), *args], env=env, cwd=cwd, input=input)


def pyadd(args: list[str], env: Mapping[str, str], cwd: Path | None = None,
          input: str | None = None) -> subprocess.CompletedProcess[Any]:
    done = run([*PYADD, *args], env=env, cwd=cwd, input=input)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def lifetime_seconds(text: str) -> int:
    """Seconds in a "Lifetime set to" value: OpenSSH 9's ``N seconds`` or 10's
    fmt_timeframe form (``HH:MM:SS``, ``XdHHhMMm``, ``WWwXdHHh``)."""
    m = re.fullmatch(r"(\d+) seconds", text)
    if m:
        return int(m.group(1))
    m = re.fullmatch(r"(\d+):(\d+):(\d+)", text)
    if m:
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
    m = re.fullmatch(r"(\d+)d(\d+)h(\d+)m", text)
    if m:
        return int(m.group(1)) * 86400 + int(m.group(2)) * 3600 + int(m.group(3)) * 60
    m = re.fullmatch(r"(\d+)w(\d+)d(\d+)h", text)
    assert m, text
    return (int(m.group(1)) * 7 + int(m.group(2))) * 86400 + int(m.group(3)) * 3600


def normalise(stderr: str) -> str:
    """ssh-add's messages with the lifetime written as seconds (its format changed in
    OpenSSH 10), the program name neutral and the usage text (which differs on purpose:
    pyadd lists its extra options) cut off."""
    stderr = stderr.split("usage: ", 1)[0]
    text = _LIFETIME.sub(lambda m: f"Lifetime set to {lifetime_seconds(m.group(1))}s", stderr)
    return text.replace("ssh-add", "PROG").replace("pyadd", "PROG")


# -- SoftHSM2 -----------------------------------------------------------------------------


@dataclass
class SoftToken:
    conf: Path
    module: str

    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}


def softhsm_token(directory: Path, label: str = "t") -> SoftToken:
    """A freshly initialised SoftHSM2 token (PIN 1234) whose files live in ``directory``."""
    if shutil.which("softhsm2-util") is None or not os.path.exists(SOFTHSM_MODULE):
        pytest.skip("SoftHSM2 is not installed")
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
    done = run(["softhsm2-util", "--init-token", "--free", "--label", label,
                "--pin", TOKEN_PIN, "--so-pin", SO_PIN], env={**os.environ, "SOFTHSM2_CONF":
                                                               str(conf)})
    assert done.returncode == 0, done.stderr
    return SoftToken(conf, SOFTHSM_MODULE)


IMPORT_SCRIPT = r"""
import sys
import pkcs11
from pkcs11 import Attribute, ObjectClass
from pkcs11.util.ec import decode_ec_private_key, decode_ec_public_key
from pkcs11.util.rsa import decode_rsa_private_key, decode_rsa_public_key
from cryptography.hazmat.primitives import serialization as s
from keytools.keyfile import load_private

lib = pkcs11.lib(sys.argv[1])
token = lib.get_token(token_label=sys.argv[2])
with token.open(user_pin=sys.argv[3], rw=True) as session:
    for n, spec in enumerate(sys.argv[4:], 1):
        path, label = spec.split("=", 1)
        key, _ = load_private(path, "")
        obj = key.to_cryptography()
        pub_der = obj.public_key().public_bytes(s.Encoding.DER,
                                                s.PublicFormat.SubjectPublicKeyInfo)
        ident = bytes([n])
        common = {Attribute.TOKEN: True, Attribute.ID: ident, Attribute.LABEL: label}
        if key.key_type == "ssh-rsa":
            der = obj.private_bytes(s.Encoding.DER, s.PrivateFormat.TraditionalOpenSSL,
                                    s.NoEncryption())
            priv = decode_rsa_private_key(der)
            pub = decode_rsa_public_key(obj.public_key().public_bytes(
                s.Encoding.DER, s.PublicFormat.PKCS1))
        else:
            der = obj.private_bytes(s.Encoding.DER, s.PrivateFormat.TraditionalOpenSSL,
                                    s.NoEncryption())
            priv = decode_ec_private_key(der)
            pub = decode_ec_public_key(pub_der)
        priv.update(common)
        priv.update({Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                     Attribute.SIGN: True})
        pub.update(common)
        pub[Attribute.VERIFY] = True
        session.create_object(priv)
        session.create_object(pub)
"""


def import_keys(token: SoftToken, keys: list[tuple[Path, str]], label: str = "t") -> None:
    """Store each unencrypted key file (made by pykeygen) on the token under ``label``."""
    specs = [f"{path}={name}" for path, name in keys]
    done = run([sys.executable, "-c", IMPORT_SCRIPT, token.module, label, TOKEN_PIN, *specs],
               env={**os.environ, **token.env()})
    assert done.returncode == 0, done.stderr


def pykeygen(*args: str) -> None:
    done = run([sys.executable, "-m", "keytools.cli.pykeygen", "-q", *args])
    assert done.returncode == 0, done.stderr
