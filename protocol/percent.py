"""misc.c's percent_expand(): ``%x`` tokens from a table, ``%%`` a percent sign. One
expander for ssh_config and sshd_config alike; each caller words the error its own
program prints."""

from __future__ import annotations

from collections.abc import Mapping


class BadPercent(ValueError):
    """A token the table lacks; ``token`` is "" for a lone ``%`` at the end."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.token = token


def expand_percent(text: str, tokens: Mapping[str, str]) -> str:
    """``text`` with every token replaced; raises BadPercent for an unknown one."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        code = text[i + 1 : i + 2]
        if code == "%":
            out.append("%")
        elif code and code in tokens:
            out.append(tokens[code])
        else:
            raise BadPercent(code)
        i += 2
    return "".join(out)
