"""The streamed read of a UTF-8 CSV file (polars' streaming engine for a plain file, 64 MB chunks for a gzip one,
the bytes counted a piece at a time beside either) gives exactly the table the in-memory read gives, wherever the
pieces and chunks happen to cut the file, and hands over to the in-memory read whatever it does not handle."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import polars as pl
import pytest
from datadrop import reading
from datadrop.reading import DatasetRejected, Table, read_table, read_upload

# Line endings, quoted separators and line breaks, spaces to strip, empty fields, a blank line, non-ASCII text, and
# a row that starts like a zlib stream (polars sniffs one by its first two bytes); each may start a chunk.
HEADER = 'name,"city, country",score,note\r\n'
ROWS = [
    "Zoë ,Köln,1.5,plain\r\n",
    '"Åsa","Malmö, Sweden",2,"two\r\nlines"\r\n',
    "\r\n",
    ',Łódź,,"a ""quoted"" word"\r\n',
    "Chloé,Zürich,  3 ,日本語\n",
    "x^2,Oslo,5,starts like a zlib stream\r\n",
]
TEXT = (HEADER + "".join(ROWS * 40)).encode()


def texts(table: Table) -> pl.DataFrame:
    """The table's values as texts (codes differ between reads, texts may not)."""
    return table.frame.select(pl.col(name).map_batches(lambda codes: table.values.gather(codes)) for name in table.columns)


def assert_same_table(streamed: Table, in_memory: Table) -> None:
    assert streamed.columns == in_memory.columns
    assert texts(streamed).equals(texts(in_memory))
    assert (streamed.rows_read, streamed.empty_rows, streamed.malformed_rows) == (
        in_memory.rows_read,
        in_memory.empty_rows,
        in_memory.malformed_rows,
    )
    assert streamed.detected == in_memory.detected
    assert streamed.normalisations == in_memory.normalisations


@pytest.fixture
def streamed_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """`read_upload` fails instead of handing the file to the in-memory read."""

    def not_expected(*args: object, **kwargs: object) -> Table:
        raise AssertionError("the streamed read handed this file over to read_table")

    monkeypatch.setattr(reading, "read_table", not_expected)


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 64, 1 << 24])
@pytest.mark.parametrize("how", ["plain", "gzip", "plain and wide"])
def test_the_streamed_read_is_the_in_memory_read_wherever_the_file_is_cut(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, piece: int, how: str
) -> None:
    data = gzip.compress(TEXT, mtime=0) if how == "gzip" else TEXT
    if how == "plain and wide":
        monkeypatch.setattr(reading, "ENGINE_MAX_COLUMNS", 3)  # a wide file is read by chunks, like a gzip one
    in_memory = read_table(data)
    path = tmp_path / "upload.csv"
    path.write_bytes(data)
    # small pieces cut CRLFs and multi-byte characters in two; small chunks cut the gzip file's records apart
    monkeypatch.setattr(reading, "COUNT_PIECE", piece)
    monkeypatch.setattr(reading, "STREAM_CHUNK", max(piece, 100))
    with monkeypatch.context() as only_streamed:
        only_streamed.setattr(reading, "read_table", lambda *args: pytest.fail("handed over to read_table"))
        from_path, from_bytes = read_upload(path), read_upload(data)
    assert_same_table(from_path, in_memory)
    assert_same_table(from_bytes, in_memory)
    assert from_path.columns == ["name", "city, country", "score", "note"]
    assert from_path.detected.line_endings == "CRLF" and from_path.empty_rows == 40


def test_byte_counts_do_not_depend_on_where_the_pieces_end() -> None:
    whole = reading._ByteCounts(",")
    assert whole.add(TEXT) and whole.finished()
    for size in (1, 2, 5, 13):
        pieces = reading._ByteCounts(",")
        assert all(pieces.add(TEXT[start : start + size]) for start in range(0, len(TEXT), size)) and pieces.finished()
        assert (pieces.separators, pieces.line_feeds, pieces.crlfs, pieces.any_quoted, pieces.line_endings) == (
            whole.separators,
            whole.line_feeds,
            whole.crlfs,
            whole.any_quoted,
            whole.line_endings,
        )


def test_a_character_cut_by_an_ascii_piece_is_not_valid_utf8() -> None:
    # b"\xc3" + b"\xa9" is "é", but not with "bc" between them
    counts = reading._ByteCounts(",")
    assert counts.add(b"a\xc3") and not (counts.add(b"bc") and counts.add(b"\xa9d") and counts.finished())
    whole = reading._ByteCounts(",")
    assert whole.add(b"a\xc3") and whole.add(b"\xa9bc") and whole.finished()


def test_a_bad_byte_after_the_first_chunk_hands_the_file_to_the_in_memory_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # UTF-8 all along, then one latin-1 byte far into the file: the in-memory read rejects a file that is partly UTF-8
    data = TEXT + "Renée,Nîmes,4,late\n".encode("latin-1")
    monkeypatch.setattr(reading, "STREAM_CHUNK", 100)
    monkeypatch.setattr(reading, "COUNT_PIECE", 64)
    handed_over: list[bytes] = []
    original = reading.read_table

    def in_memory(data: bytes, *args: object) -> Table:
        handed_over.append(data)
        return original(data, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(reading, "read_table", in_memory)
    for upload in (data, gzip.compress(data, mtime=0)):
        handed_over.clear()
        with pytest.raises(DatasetRejected) as caught:
            read_upload(upload)
        assert handed_over == [upload]
        assert "UTF-8" in caught.value.reason


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_a_short_row_after_the_first_chunk_is_counted_by_the_in_memory_read(
    monkeypatch: pytest.MonkeyPatch, compressed: bool
) -> None:
    # polars fills the fields a short line lacks with nulls; only the separators' count tells them from empty fields
    data = b"a,b,c\n" + b"1,2,3\n" * 500 + b"4,5\n" + b"6,7,8\n" * 500
    monkeypatch.setattr(reading, "STREAM_CHUNK", 100)
    upload = gzip.compress(data, mtime=0) if compressed else data
    with pytest.raises(DatasetRejected) as caught:
        read_upload(upload)
    assert "line 502 has 2 fields" in caught.value.reason
    assert read_upload(upload, max_malformed_share=0.01).malformed_rows == 1


def test_the_separators_are_counted_only_when_a_line_ends_in_an_empty_field(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[int] = []
    original = reading._separators_in

    def separators_in(source: bytes, separator: bytes) -> int:
        counted.append(original(source, separator))
        return counted[-1]

    monkeypatch.setattr(reading, "_separators_in", separators_in)
    full = b"a,b,c\n" + b'1,"x,y",3\n' * 100
    assert read_upload(full).frame.height == 100 and counted == []  # no line can be short: nothing to count
    assert read_upload(full + b"4,,\n").frame.height == 101 and counted == [2 + 3 * 100 + 2]  # empty last fields, not short


def test_a_byte_check_slower_than_polars_is_waited_for(monkeypatch: pytest.MonkeyPatch, streamed_only: None) -> None:
    added = reading._ByteCounts.add

    def slow_add(self: reading._ByteCounts, piece: bytes) -> bool:
        time.sleep(0.02)
        return added(self, piece)

    monkeypatch.setattr(reading._ByteCounts, "add", slow_add)
    # the check starts with the head the format was detected on, then reads on: 20 pieces, 0.4 s, polars done long before
    monkeypatch.setattr(reading, "STREAM_CHUNK", 256)
    monkeypatch.setattr(reading, "COUNT_PIECE", 256)
    table = read_upload(TEXT)
    assert table.columns == ["name", "city, country", "score", "note"] and table.frame.height == len(ROWS * 40) - 40
