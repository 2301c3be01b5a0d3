"""The sshd fixture itself: a key in AuthorizedKeysFile logs in, another key does not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.helpers import run, tool_path
from tests.interop.sshd import SshdServer


def test_real_sshd_accepts_authorized_key(tmp_path: Path,
                                          sshd_factory: Callable[..., SshdServer]) -> None:
    keygen = tool_path("ssh-keygen")
    for name in ("good", "other"):
        made = run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)])
        assert made.returncode == 0
    ak = tmp_path / "authorized_keys"
    ak.write_text((tmp_path / "good.pub").read_text())
    server = sshd_factory(f"AuthorizedKeysFile {ak}")
    ok = server.ssh("echo", "hello", identity=tmp_path / "good")
    assert ok.returncode == 0, ok.stderr + server.log_text()
    assert ok.stdout == "hello\n"
    refused = server.ssh("true", identity=tmp_path / "other")
    assert refused.returncode == 255
