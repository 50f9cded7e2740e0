"""Writing the prepared splits: train and validation encoded (label first, headerless CSV, as the built-in
algorithms read them), the test rows' raw texts as JSON Lines (one array per line, so a line-split batch
transform never cuts a record), and the test labels. Rows are written a batch at a time, in file order; polars
writes a CSV on one thread, so each batch is cut into pieces written in parallel and appended in order.
"""

from __future__ import annotations

import io
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import polars as pl

from datadrop.splitting import TEST, TRAIN, VALIDATION

WRITE_ROWS = 1 << 19  # rows encoded and written at a time (a batch of texts gathered is twice its numbers: 1 GB, -130 MB peak)
LABEL = "\x00label"  # the label column's name while a split is written (a column's name may be "label")


class Encoder(Protocol):
    """What turns a batch of rows' codes into their encoded features (`datadrop.dataprep`'s lookups): a column of
    numbers per feature, Float64 or String, the numbers' texts exactly as `write_csv` formats a Float64 (so
    written as they are, without formatting a float per cell). Either way the CSV holds no quotes."""

    @property
    def sources(self) -> list[str]: ...  # the columns the features are computed from, one per feature

    # True: encoding a piece of rows costs its share of encoding them all (a lookup gathered), so each piece is
    # encoded by the thread that writes it; False: each call builds its lookup (keyed), so a batch is encoded once
    @property
    def per_piece(self) -> bool: ...

    def encoded(self, rows: pl.DataFrame) -> pl.DataFrame: ...


def _json_strings(texts: pl.Expr) -> pl.Expr:
    """Each text as a JSON string literal, quotes included: JSON escapes line breaks, quotes and control characters."""
    return pl.struct(texts.alias("v")).struct.json_encode().str.slice(5).str.head(-1)  # {"v":...} without {"v": and }


class _TestRowWriter:
    """Writes test rows (given as codes) as JSON Lines, one array of texts per line: `["Adelie","Biscoe",...]`.

    When the texts are few against the cells to write (a long, narrow file), each distinct text is JSON-encoded
    once and looked up; otherwise (a wide file of distinct values) each cell is encoded as it is written.
    """

    def __init__(self, values: pl.Series, cells: int) -> None:
        self.values = values
        self.json = pl.select(_json_strings(pl.lit(values))).to_series() if 4 * len(values) <= cells else None

    def write(self, codes: pl.DataFrame, buffer: io.BytesIO) -> None:
        height = codes.height
        cells = pl.concat(codes.get_columns())  # one gather for all the columns
        if self.json is not None:
            texts = self.json.gather(cells)
            strings = [texts.slice(index * height, height) for index in range(codes.width)]
        else:
            texts = self.values.gather(cells)
            strings = [
                pl.select(_json_strings(pl.lit(texts.slice(index * height, height)))).to_series() for index in range(codes.width)
            ]
        del cells, texts
        line = pl.concat_str([pl.lit("["), pl.concat_str([pl.lit(column) for column in strings], separator=","), pl.lit("]")])
        pl.select(line).write_csv(buffer, include_header=False, quote_style="never")  # JSON needs no CSV quoting


def _pieces(rows: pl.DataFrame, count: int) -> list[pl.DataFrame]:
    """`rows` cut into `count` consecutive pieces of about equal height (no empty one)."""
    size = -(-rows.height // count)
    return [rows.slice(start, size) for start in range(0, rows.height, size)]


def write_splits(
    frame: pl.DataFrame,
    labels: pl.Series,
    part: pl.Series,
    lookups: Encoder,
    test_columns: list[str],
    values: pl.Series,
    classes: list[str],
) -> tuple[bytes, bytes, bytes, list[str] | list[float]]:
    """The train and validation rows encoded (label first, CSV), the test rows' raw values (JSON Lines) and
    their labels, written WRITE_ROWS rows at a time, in file order. `labels`: each row's class index (UInt32),
    or for regression its number (Float64), written as it is."""
    outputs = {TRAIN: io.BytesIO(), VALIDATION: io.BytesIO(), TEST: io.BytesIO()}
    test_labels: list = []
    regression = labels.dtype == pl.Float64
    sources = list(dict.fromkeys(lookups.sources))
    threads = pl.thread_pool_size()
    test_writer = _TestRowWriter(values, int((part == TEST).sum()) * len(test_columns))

    def piece_bytes(piece: tuple[int, pl.DataFrame]) -> bytes:
        """A piece of a split as its file holds it: encoded rows as headerless CSV, test rows as JSON Lines."""
        split, rows = piece
        buffer = io.BytesIO()
        if split == TEST:
            test_writer.write(rows, buffer)
        else:
            if lookups.per_piece:  # encoded here, in parallel: each feature's lookup is a gather on one thread
                rows = encoded_with_label(rows)
            rows.write_csv(buffer, include_header=False, quote_style="never")  # numbers and their texts need no quoting
        return buffer.getvalue()

    def encoded_with_label(rows: pl.DataFrame) -> pl.DataFrame:
        labelled = rows.get_column(LABEL)
        encoded = lookups.encoded(rows)
        encoded.insert_column(0, labelled if regression else labelled.cast(pl.Int64))
        return encoded

    def append(pieces: list[tuple[int, Future[bytes]]]) -> None:
        for split, body in pieces:
            outputs[split].write(body.result())

    in_flight: list[tuple[int, Future[bytes]]] = []  # the pieces of the batch before, being written
    with ThreadPoolExecutor(threads) as writing:
        for start in range(0, frame.height, WRITE_ROWS):
            rows, where, label = frame.slice(start, WRITE_ROWS), part.slice(start, WRITE_ROWS), labels.slice(start, WRITE_ROWS)
            pieces: list[tuple[int, pl.DataFrame]] = []  # (split, rows' codes to write), in the order they are appended
            for split in (TRAIN, VALIDATION):
                mask = where == split
                if not mask.any():
                    continue
                chosen = rows.select(sources).filter(mask).with_columns(label.filter(mask).alias(LABEL))
                if not lookups.per_piece:
                    chosen = encoded_with_label(chosen)
                pieces += [(split, piece) for piece in _pieces(chosen, threads)]
            mask = where == TEST
            if mask.any():
                pieces += [(TEST, piece) for piece in _pieces(rows.select(test_columns).filter(mask), threads)]
                held_out = label.filter(mask).to_list()
                # a class's name is one str shared by its rows (a str per row: 2.5M of them per GB, twice the time)
                test_labels += held_out if regression else list(map(classes.__getitem__, held_out))
            # polars writes a CSV on one thread, so the pieces are written in parallel, and appended in order while the
            # next batch's pieces are written
            previous, in_flight = in_flight, [(split, writing.submit(piece_bytes, (split, piece))) for split, piece in pieces]
            del pieces
            append(previous)
        append(in_flight)
    return outputs[TRAIN].getvalue(), outputs[VALIDATION].getvalue(), outputs[TEST].getvalue(), test_labels
