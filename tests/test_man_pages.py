"""The man pages render without warnings, and man/pysshd_config.5 documents exactly the
keywords pysshd implements (one entry each, the not-implemented list generated from the
same tables), so the page cannot fall behind the code."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.helpers import REPO_ROOT, run

MAN = REPO_ROOT / "man"
PAGES = sorted(p.name for p in MAN.iterdir() if re.fullmatch(r"\w+\.[158]", p.name))


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_warnings(page: str) -> None:
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff is not installed")
    done = run([groff, "-mandoc", "-ww", "-z", str(MAN / page)])
    assert (done.returncode, done.stderr) == (0, "")


def _sections(page: str) -> dict[str, str]:
    return dict(re.findall(r"^\.Sh ([^\n]+)\n(.*?)(?=^\.Sh |\Z)", page, re.M | re.S))


def _implemented() -> dict[str, str]:
    from protocol import sshd_config
    from protocol.forward_policy import POLICY_KEYWORDS
    from protocol.penalty import LIMIT_KEYWORDS
    from protocol.session_config import SESSION_KEYWORDS

    tables = (sshd_config._SUPPORTED, SESSION_KEYWORDS, POLICY_KEYWORDS, LIMIT_KEYWORDS)
    names = {k.lower(): v for table in tables for k, v in table.items()}
    names.pop("pubkeyacceptedkeytypes", None)  # the old name, documented with the new one
    return names


def test_pysshd_config_documents_each_implemented_keyword_once() -> None:
    page = (MAN / "pysshd_config.5").read_text()
    entries = re.findall(r"^\.It Cm ([A-Z]\w+)", page, re.M)
    implemented = _implemented()
    assert [e for e in entries if implemented.get(e.lower()) != e] == []
    lowered = [e.lower() for e in entries]
    assert {k: lowered.count(k) for k in implemented if lowered.count(k) != 1} == {}
    for name, body in _sections(page).items():
        keys = re.findall(r"^\.It Cm ([A-Z]\w+)", body, re.M)
        assert keys == sorted(keys, key=str.lower), f"{name} is not in alphabetical order"


def test_pysshd_config_lists_the_keywords_not_implemented() -> None:
    from protocol import sshd_config

    page = (MAN / "pysshd_config.5").read_text()
    implemented = _implemented()
    canonical = {sshd_config.ALIASES.get(k, k) for k in sshd_config._UNSUPPORTED}
    expected = {sshd_config._UNSUPPORTED[k] for k in canonical
                if k in sshd_config._UNSUPPORTED and k not in implemented}
    section = page.split(".Sh KEYWORDS NOT IMPLEMENTED", 1)[1].split("The old names", 1)[0]
    listed = set(re.findall(r"\b([A-Z][A-Za-z0-9]+)\b", " ".join(
        line[4:] for line in section.splitlines() if line.startswith(".Cm "))))
    assert (sorted(expected - listed), sorted(listed - expected)) == ([], [])
