"""CSV with untrusted data on either side: a reader that refuses what would make it
mislead (a field over 4 KB, a quote left open, a record spanning lines), and a writer whose
cells a spreadsheet cannot run as formulas.

Every CSV Sika reads (registries, statements) goes through `records`, and every CSV it
writes (exports, reports) through `writer`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

MAX_FIELD_BYTES = 4096
# a character is at most 4 bytes in UTF-8: shorter fields need no encoding to be measured
_SURELY_SHORT = MAX_FIELD_BYTES // 4
# What a spreadsheet reads as the start of a formula (and tab or CR, which some strip
# before looking): such a cell is written with a leading apostrophe, shown as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class CsvFormatError(Exception):
    """A record the reader refuses: `line` is the physical line where it ends, `record` its
    number (0 for the header), `column` the index of the field at fault when known."""

    def __init__(self, record: int, line: int, column: int | None, message: str) -> None:
        super().__init__(message)
        self.record = record
        self.line = line
        self.column = column
        self.message = message

    def field(self, names: Sequence[str]) -> str:
        """The faulty field's name in `names` (a header), or "row" when unknown."""
        if self.column is not None and 0 <= self.column < len(names) and names[self.column]:
            return names[self.column]
        if self.column is not None:
            return f"field {self.column + 1}"
        return "row"


class Record(NamedTuple):
    """One record: its number (0 for the first, usually the header), the physical line it
    ends on, and its fields."""

    number: int
    line: int
    cells: list[str]


class _Lines:
    """The text source, remembering the lines of the record being read, so a refusal can
    say which field was at fault after the csv module gave up on the record."""

    def __init__(self, source: Iterable[str]) -> None:
        self._source = iter(source)
        self.pending: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._source)
        self.pending.append(line)
        return line


def records(source: Iterable[str], delimiter: str) -> Iterator[Record]:
    """Every record of `source` (lines as read with `newline=""`), the first included.

    Raises CsvFormatError for a field over MAX_FIELD_BYTES (UTF-8), a quote that is never
    closed or is followed by text, and a record spread over several lines: no file Sika
    reads has a line break inside a field, so such a record means a stray quote has
    swallowed the rows after it.
    """
    lines = _Lines(source)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    number = -1
    ended = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _explain(exc, number + 1, reader.line_num, lines.pending, delimiter) from None
        number += 1
        if reader.line_num - ended > 1:
            column = _column_with_break(lines.pending, delimiter)
            raise CsvFormatError(
                number,
                reader.line_num,
                column,
                f"spans lines {ended + 1}-{reader.line_num}: a quote is left open",
            )
        ended = reader.line_num
        lines.pending.clear()
        if cells and max(map(len, cells)) > _SURELY_SHORT:
            for column, cell in enumerate(cells):
                if len(cell) > _SURELY_SHORT and len(cell.encode("utf-8")) > MAX_FIELD_BYTES:
                    raise CsvFormatError(number, ended, column, _too_long())
        yield Record(number, ended, cells)


def _too_long() -> str:
    return f"is longer than {MAX_FIELD_BYTES} bytes"


def _explain(
    exc: csv.Error, number: int, line: int, pending: list[str], delimiter: str
) -> CsvFormatError:
    """The csv module's refusal as a CsvFormatError naming the field when it can."""
    text = "".join(pending)
    message = str(exc)
    long_column, open_column = _scan(text, delimiter)
    if "field larger than field limit" in message:
        return CsvFormatError(number, line, long_column, _too_long())
    if "unexpected end of data" in message:
        return CsvFormatError(number, line, open_column, "opens a quote that is never closed")
    if "expected after" in message:
        return CsvFormatError(
            number, line, open_column, "has text after its closing quote (a stray quote?)"
        )
    return CsvFormatError(number, line, None, f"is not valid CSV ({message})")


def _scan(text: str, delimiter: str) -> tuple[int | None, int | None]:
    """(first field over the limit, field whose quote was left open) in a record's text;
    only run on a record the csv module refused, so plain Python is fast enough."""
    column = size = 0
    quoted = False
    opened: int | None = None
    for index, char in enumerate(text):
        if quoted:
            if char == '"':
                quoted = False
                opened = None
                continue
        elif char == '"':
            quoted = True
            opened = column
            continue
        elif char == delimiter:
            column += 1
            size = 0
            continue
        elif char in "\r\n" and index == len(text.rstrip("\r\n")):
            break
        size += len(char.encode("utf-8"))
        if size > MAX_FIELD_BYTES:
            return column, opened
    return None, opened


def _column_with_break(pending: list[str], delimiter: str) -> int | None:
    """The field holding a line break in a record spread over `pending` lines."""
    column = 0
    quoted = False
    for char in "".join(pending).rstrip("\r\n"):
        if char == '"':
            quoted = not quoted
        elif char == delimiter and not quoted:
            column += 1
        elif char in "\r\n" and quoted:
            return column
    return None


def neutralise(value: Any) -> Any:
    """A cell as written: text a spreadsheet would take for a formula (`=HYPERLINK(...)`,
    `+`, `-`, `@`, a leading tab or CR) gets a leading apostrophe; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


class SafeWriter:
    """`csv.writer` whose every text cell goes through `neutralise`."""

    def __init__(self, handle: _Writable, **options: Any) -> None:
        self._writer = csv.writer(handle, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        """Write one row, formula-like cells neutralised."""
        return self._writer.writerow([neutralise(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        """Write every row, formula-like cells neutralised."""
        for row in rows:
            self.writerow(row)


def writer(handle: _Writable, **options: Any) -> SafeWriter:
    """A CSV writer for anything Sika exports (options as `csv.writer`'s)."""
    return SafeWriter(handle, **options)
