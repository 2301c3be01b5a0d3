"""The same pyadd session against OpenSSH's ssh-agent and against pyagent: every step
must give the same exit status and output, and leave the same identities behind."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run, tool_path
from tests.interop.pyadd_support import normalise, openssh_agent, py_agent, pyadd, ssh_add

PASSPHRASE = "pass phrase"


def keygen(*args: str) -> None:
    done = run([tool_path("ssh-keygen"), "-q", *args])
    assert done.returncode == 0, done.stderr


def test_same_session_on_both_agents(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    keygen("-t", "ed25519", "-N", "", "-C", "one", "-f", str(keys / "ed"))
    keygen("-t", "ecdsa", "-b", "384", "-N", "", "-C", "two", "-f", str(keys / "ec"))
    keygen("-t", "rsa", "-b", "2048", "-N", "", "-C", "", "-f", str(keys / "rsa"))
    keygen("-t", "ed25519", "-a", "2", "-N", PASSPHRASE, "-C", "enc", "-f", str(keys / "enc"))
    keygen("-t", "ed25519", "-N", "", "-f", str(keys / "ca"))
    keygen("-s", str(keys / "ca"), "-I", "cert id", "-n", "u", str(keys / "ed.pub"))
    (keys / "kh").write_text(f"somehost {(keys / 'ca.pub').read_text()}")
    steps: list[tuple[list[str], str | None]] = [
        (["-l"], None), (["-L"], None), (["ed", "ec", "rsa"], None), (["-l"], None),
        (["-L"], None), (["-E", "md5", "-l"], None), (["enc"], PASSPHRASE + "\n"),
        (["-T", "ed.pub", "ec.pub", "rsa.pub", "enc.pub", "ed-cert.pub"], None),
        (["-d", "ec"], None), (["-d", "ec"], None), (["-k", "-d", "ed"], None), (["-L"], None),
        (["-t", "1h", "-c", "-N", "ed"], None), (["-l"], None),
        (["-H", "kh", "-h", "somehost", "-h", "u@somehost", "rsa"], None),
        (["-x"], "lock\nlock\n"), (["-l"], None), (["ec"], None), (["-X"], "wrong\n"),
        (["-X"], "lock\n"), (["-L"], None), (["-D"], None), (["-l"], None), (["-d", "ed"], None),
    ]
    outcomes = []
    for start in (openssh_agent, py_agent):
        with start(tmp_path / start.__name__) as agent:
            seen = []
            for args, answer in steps:
                done = pyadd(args, agent.env(), cwd=keys, input=answer)
                listed = ssh_add(["-L"], agent.env()).stdout
                seen.append((args, done.returncode, done.stdout, normalise(done.stderr), listed))
            outcomes.append(seen)
    for ours, theirs in zip(outcomes[1], outcomes[0], strict=True):
        assert ours == theirs
