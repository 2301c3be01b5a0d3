"""Property tests of the wire codec: arbitrary input gives values or SshError, nothing else."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from keytools.errors import MessageIncomplete, SshError
from keytools.wire import MAX_BIGNUM_BYTES, Reader, Writer

READ_FIELDS = ("byte", "boolean", "uint32", "uint64", "string", "text", "ascii", "mpint",
               "name_list", "sub", "rest", "end")


@given(st.binary(max_size=512), st.lists(st.sampled_from(READ_FIELDS), max_size=20))
def test_reader_on_arbitrary_bytes_raises_only_ssh_errors(data: bytes, fields: list[str]) -> None:
    r = Reader(data)
    for field in fields:
        before = r.position
        try:
            getattr(r, field)()
        except SshError:
            return
        assert before <= r.position <= len(data)
        assert r.remaining == len(data) - r.position


@given(st.binary(max_size=64), st.integers(), st.integers(), st.integers())
def test_reader_raw_and_slice_bounds(data: bytes, n: int, start: int, end: int) -> None:
    r = Reader(data)
    try:
        got = r.raw(n)
        assert len(got) == n
    except SshError:
        assert n < 0 or n > len(data)
    try:
        got = r.slice(start, end)
        assert got == data[start:end]
    except SshError:
        assert not 0 <= start <= end <= r.position


@given(st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=64))
def test_string_with_any_claimed_length(length: int, body: bytes) -> None:
    r = Reader(length.to_bytes(4, "big") + body)
    try:
        assert r.string() == body[:length]
    except SshError:
        assert length > len(body)


# A field kind and a strategy producing values a Writer accepts for it.
_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "byte": st.integers(0, 255),
    "boolean": st.booleans(),
    "uint32": st.integers(0, 2**32 - 1),
    "uint64": st.integers(0, 2**64 - 1),
    "string": st.binary(max_size=300),
    "text": st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]),
                    max_size=50),
    "mpint": st.integers(0, 2 ** (MAX_BIGNUM_BYTES * 8) - 1)
    | st.integers(0, 2**300),
    "name_list": st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-@.",
                                  min_size=1, max_size=20), max_size=6),
}

_fields = st.lists(
    st.sampled_from(sorted(_FIELD_VALUES)).flatmap(
        lambda kind: st.tuples(st.just(kind), _FIELD_VALUES[kind])
    ),
    max_size=25,
)


def _write(w: Writer, kind: str, value: Any) -> None:
    if kind == "text":
        w.string(value)
    else:
        getattr(w, kind)(value)


@given(_fields)
def test_writer_reader_round_trip(fields: list[tuple[str, Any]]) -> None:
    w = Writer()
    for kind, value in fields:
        _write(w, kind, value)
    data = w.getvalue()
    assert len(w) == len(data)
    r = Reader(data)
    for kind, value in fields:
        assert getattr(r, kind)() == value
    r.end()


@given(_fields, st.data())
def test_truncated_round_trip_raises_message_incomplete(
    fields: list[tuple[str, Any]], data: st.DataObject
) -> None:
    w = Writer()
    for kind, value in fields:
        _write(w, kind, value)
    full = w.getvalue()
    cut = data.draw(st.integers(0, len(full)))
    r = Reader(full[:cut])
    try:
        for kind, value in fields:
            assert getattr(r, kind)() == value
        r.end()
    except MessageIncomplete:
        assert cut < len(full)
    else:
        assert cut == len(full)


@given(st.integers(min_value=0))
def test_mpint_encoding_is_minimal(value: int) -> None:
    raw = Writer().mpint(value).getvalue()[4:]
    if value == 0:
        assert raw == b""
    else:
        assert raw[0] != 0 or raw[1] & 0x80  # a zero byte only to keep the sign bit clear
        assert not raw[0] & 0x80
