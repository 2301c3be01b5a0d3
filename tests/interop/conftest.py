"""Fixtures for tests that run real OpenSSH servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.interop.sshd import SshdServer, start_sshd


@pytest.fixture
def sshd_factory(tmp_path: Path) -> Iterator[Callable[..., SshdServer]]:
    """Start real sshd servers on 127.0.0.1; all are stopped by pid when the test ends."""
    servers: list[SshdServer] = []

    def start(config: str = "", **kwargs: Path | None) -> SshdServer:
        server = start_sshd(tmp_path / f"sshd{len(servers)}", config, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
