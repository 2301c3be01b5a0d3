"""Packaging promises: cheap imports, stub entry points, and CI running what README says."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import textwrap

import pytest

from tests.helpers import REPO_ROOT, TESTDATA, run, tool_path

#: Heavy or optional packages that importing the key library must never pull in.
FORBIDDEN = ("rich", "keyring", "pkcs11")


def _loaded_modules(code: str) -> set[str]:
    """Run ``code`` in a fresh interpreter and return the top-level names in sys.modules."""
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    proc = run([sys.executable, "-c", script], cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    return {name.split(".")[0] for name in json.loads(proc.stdout.splitlines()[-1])}


def test_importing_the_key_library_is_cheap() -> None:
    loaded = _loaded_modules(
        "import keytools, keytools.public, keytools.wire, keytools.errors, keytools.certificate"
    )
    for name in FORBIDDEN:
        assert name not in loaded, f"{name} imported by the key library"
    assert "cryptography" not in loaded
    assert "keytools" in loaded


def test_fingerprint_of_ed25519_key_needs_no_cryptography() -> None:
    if not (REPO_ROOT / "keytools" / "fingerprint.py").exists():
        pytest.skip("keytools/fingerprint.py not written yet")
    pub = TESTDATA / "sshkey" / "ed25519_1.pub"
    code = textwrap.dedent(
        f"""
        from keytools.public import parse_public_line
        from keytools.fingerprint import fingerprint
        key, _ = parse_public_line(open({str(pub)!r}).read())
        print(fingerprint(key))
        """
    )
    proc = run([sys.executable, "-c", code + "import sys; print(sorted(sys.modules))"],
               cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    fp_line, modules = proc.stdout.splitlines()[-2:]
    expected = (TESTDATA / "sshkey" / "ed25519_1.fp").read_text().strip()
    assert fp_line == expected
    loaded = {m.split(".")[0] for m in re.findall(r"'([^']+)'", modules)}
    assert "cryptography" not in loaded
    for name in FORBIDDEN:
        assert name not in loaded


SCRIPTS = [
    ("pykeygen", "agent.keygen", "main"),
    ("pyagent", "agent.cli", "pyagent_main"),
    ("pyadd", "agent.cli", "pyadd_main"),
    ("pysshd", "protocol.cli", "pysshd_main"),
    ("pyssh", "protocol.cli", "pyssh_main"),
]


def test_console_scripts_point_at_their_entry_points() -> None:
    import tomllib

    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for prog, module, func in SCRIPTS:
        assert scripts[prog] == f"{module}:{func}"


@pytest.mark.parametrize("prog", ["pykeygen", "pyagent", "pyadd", "pyssh"])
def test_implemented_scripts_reject_a_bad_flag_like_openssh(prog: str) -> None:
    """An unknown flag: the same exit status and first complaint as the OpenSSH tool."""
    path = shutil.which(prog)
    if path is None:
        pytest.skip(f"{prog} not installed (run pip install -e .)")
    real = tool_path({"pykeygen": "ssh-keygen", "pyagent": "ssh-agent", "pyadd": "ssh-add",
                      "pyssh": "ssh"}[prog])
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    ours, theirs = run([path, "-9"], env=env), run([real, "-9"], env=env)
    assert ours.returncode == theirs.returncode != 0
    assert "Traceback" not in ours.stderr
    assert ("usage:" in ours.stderr) == ("usage:" in theirs.stderr)


def _readme_commands() -> dict[str, str]:
    """The single command line in the fenced block after each ``<!-- ci:NAME -->`` marker."""
    text = (REPO_ROOT / "README.md").read_text()
    found = dict(re.findall(r"^<!-- ci:(\w+) -->\n```\w*\n([^\n]+)\n```$", text, re.M))
    return found


def test_readme_has_the_two_setup_commands() -> None:
    commands = _readme_commands()
    assert set(commands) == {"install", "test"}
    assert "apt-get install -y" in commands["install"]
    assert "pip install -e '.[test]'" in commands["install"]
    assert commands["test"] == "ruff check . && mypy && python3 -m pytest"


def test_ci_runs_exactly_the_readme_commands() -> None:
    script = REPO_ROOT / ".ci" / "run"
    assert script.stat().st_mode & 0o111, ".ci/run must be executable"
    proc = run(["bash", script, "--print"], cwd="/")
    assert proc.returncode == 0, proc.stderr
    commands = _readme_commands()
    assert proc.stdout.splitlines() == [commands["install"], commands["test"]]
