"""Fixtures every test module can use; plain helpers live in tests/helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers import REPO_ROOT, TESTDATA, tool_path

# Hypothesis loads its own "ci" profile when CI is set (derandomized, no deadline). Locally,
# drop the 200 ms deadline too: the first call into cryptography can be slow, and a timing
# failure says nothing about a parser. HYPOTHESIS_PROFILE picks another profile explicitly.
settings.register_profile(
    "dev", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
if "HYPOTHESIS_PROFILE" in os.environ:
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])
elif settings.default is not None and settings.default.deadline is not None:
    settings.load_profile("dev")

#: Variables that would let a test reach the user's agent, display or askpass program.
_HOSTILE_ENV = ("SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "DISPLAY")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def testdata_dir() -> Path:
    """The conformance corpus (../shared/testdata beside the repository)."""
    if not TESTDATA.is_dir():
        pytest.fail(f"conformance corpus missing: {TESTDATA}")
    return TESTDATA


@pytest.fixture(scope="session")
def ssh_keygen() -> str:
    """Path of the real ssh-keygen; tests using it are skipped when it is missing."""
    return tool_path("ssh-keygen")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME (with an empty 0700 ~/.ssh) so nothing reads or writes the real one.

    Agent, askpass and display variables are removed so subprocesses cannot reach them.
    """
    home_dir = tmp_path / "home"
    (home_dir / ".ssh").mkdir(parents=True)
    (home_dir / ".ssh").chmod(0o700)
    monkeypatch.setenv("HOME", str(home_dir))
    for name in _HOSTILE_ENV:
        monkeypatch.delenv(name, raising=False)
    return home_dir
