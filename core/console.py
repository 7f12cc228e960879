"""CLI output: data to stdout (a Rich table, or JSON with `--json`), diagnostics to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Write `data` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str, indent=2) + "\n")
    sys.stdout.flush()


def print_record(record: Mapping[str, Any], title: str | None = None) -> None:
    """A two-column table of one record's fields."""
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in record.items():
        table.add_row(Text(str(key)), _cell(value))
    out.print(table)


def print_rows(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str], title: str | None = None
) -> None:
    """A table with one row per mapping, in `columns` order."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    out.print(table)


def emit(data: Mapping[str, Any], as_json: bool, title: str | None = None) -> None:
    """JSON or a record table, as the user asked."""
    if as_json:
        print_json(data)
    else:
        print_record(data, title)


def _cell(value: Any) -> Text:
    # Plain text, never Rich markup: an operator's "[status 98]" must print as it came.
    return Text(_plain(value))


def _plain(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
