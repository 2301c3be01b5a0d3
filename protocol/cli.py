"""Console entry points for pyssh and pysshd; the work lives in ssh_main and sshd_main."""

from __future__ import annotations


def pyssh_main(argv: list[str] | None = None) -> int:
    """ssh client replacement: protocol.ssh_main (exec of a command; no pty yet)."""
    from protocol.ssh_main import run

    return run(argv)


def pysshd_main(argv: list[str] | None = None) -> int:
    """sshd replacement: protocol.sshd_main (unprivileged, current user only for now)."""
    from protocol.sshd_main import main

    return main(argv)
