"""pykeygen's interactive prompts on a real terminal (a pty), side by side with ssh-keygen."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from pathlib import Path

from tests.helpers import run, tool_path

PYKEYGEN = [sys.executable, "-m", "keytools.cli.pykeygen"]


class Terminal:
    """A child process on a pty, driven like a person at a keyboard."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # child
            os.chdir(cwd)
            os.execvp(argv[0], argv)
        self.pid, self.fd = pid, fd
        self.transcript = b""
        self.seen = 0  # transcript bytes already matched by expect()

    def expect(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.transcript[self.seen :]:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {text!r}; got {self.transcript!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"EOF waiting for {text!r}; got {self.transcript!r}"
                self.transcript += chunk
        self.seen = self.transcript.index(text.encode(), self.seen) + len(text)

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\n")

    def finish(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                self.transcript += chunk
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                try:
                    while chunk := os.read(self.fd, 4096):
                        self.transcript += chunk
                except OSError:
                    pass
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
                raise AssertionError(f"child did not exit: {self.transcript!r}")


def _session(argv: list[str], cwd: Path, answers: list[tuple[str, str]]) -> tuple[int, str]:
    term = Terminal(argv, cwd)
    for prompt, answer in answers:
        term.expect(prompt)
        term.send(answer)
    code = term.finish()
    text = term.transcript.decode("utf-8", "replace").replace("\r\n", "\n")
    text = re.sub(r"SHA256:[A-Za-z0-9+/]{43}", "FP", text)
    text = re.sub(r"\|[^|\n]{17}\|", "|ART|", text)
    return code, text


def _generate_dialogue(target: str) -> list[tuple[str, str]]:
    return [
        ("Enter file in which to save the key", target),
        ("Enter passphrase (empty for no passphrase): ", "one"),
        ("Enter same passphrase again: ", "two"),
        ("Try again.", ""),
        ("Enter passphrase (empty for no passphrase): ", "secret"),
        ("Enter same passphrase again: ", "secret"),
    ]


def test_generate_dialogue_matches_ssh_keygen(tmp_path: Path) -> None:
    keygen = tool_path("ssh-keygen")
    transcripts = []
    for name, argv in (("ours", PYKEYGEN), ("theirs", [keygen])):
        d = tmp_path / name
        d.mkdir()
        dialogue = _generate_dialogue(str(d / "key"))
        # "Try again." is printed, not a prompt: answer nothing for it.
        term = Terminal([*argv, "-t", "ed25519", "-a", "2", "-C", "c"], d)
        for prompt, answer in dialogue:
            term.expect(prompt)
            if prompt != "Try again.":
                term.send(answer)
        assert term.finish() == 0, term.transcript
        text = term.transcript.decode().replace("\r\n", "\n").replace(str(d), "DIR")
        text = re.sub(r"SHA256:[A-Za-z0-9+/]{43}", "FP", text)
        text = re.sub(r"\|[^|\n]{17}\|", "|ART|", text)
        transcripts.append(text)
        check = run([keygen, "-y", "-P", "secret", "-f", str(d / "key")])
        assert check.returncode == 0, check.stderr
    assert transcripts[0] == transcripts[1]


def test_overwrite_question(tmp_path: Path) -> None:
    keygen = tool_path("ssh-keygen")
    results = []
    for name, argv in (("ours", PYKEYGEN), ("theirs", [keygen])):
        d = tmp_path / name
        d.mkdir()
        (d / "key").write_text("keep me")
        code, text = _session(
            [*argv, "-t", "ed25519", "-N", "", "-f", "key"], d, [("Overwrite (y/n)? ", "n")]
        )
        assert (d / "key").read_text() == "keep me"
        results.append((code, text))
    assert results[0] == results[1]
    assert results[0][0] == 1


def test_passphrase_prompt_for_print_public(tmp_path: Path) -> None:
    keygen = tool_path("ssh-keygen")
    made = run([keygen, "-q", "-t", "ed25519", "-N", "pw", "-a", "2", "-C", "x", "-f",
                str(tmp_path / "k")])
    assert made.returncode == 0
    code, text = _session([*PYKEYGEN, "-y", "-f", "k"], tmp_path, [("Enter passphrase: ", "pw")])
    assert code == 0
    assert (tmp_path / "k.pub").read_text().strip() in text
