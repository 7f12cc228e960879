"""The farmer registry: streaming CSV import, lookup, and decryption when paying.

A file is read row by row, validated and encrypted ahead of the writer (by a second
process for a large file), and written in chunks through COPY into a temporary table and
one set-based upsert per chunk, so a million rows import in bounded memory.

The registry decides whose wallet a subsidy reaches: importing is a maker's signed
request, naming the file by its SHA-256. Showing a farmer decrypts personal data, and so
does re-encrypting the registry: both are signed requests, recorded in the audit log.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing as mp
import queue
import re
import sys
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from agripme.models import FIRST_NAME, LAST_NAME, NATIONAL_ID, PHONE, RECORD, Farmer, Region
from core import csvsafe
from core.authority import SignedRequest, authorize
from core.bounds import checked_text
from core.crypto import PiiKeys
from core.errors import AuthorizationError, NotFoundError, ValidationError
from core.models import Role
from providers.msisdn import InvalidMsisdn, Operator, mask, normalise, route

CHUNK_ROWS = 5_000
MAX_ERRORS_KEPT = 10_000
# batches prepared ahead of the one being written
_READ_AHEAD = 2
# from this file size on, a second process prepares the batches: forking costs tens of
# milliseconds, which a small file would not win back
PROCESS_FROM_BYTES = 4 << 20
# serialises imports: the duplicate checks of one chunk must see every earlier write
_IMPORT_LOCK = 0x51CA_F42E

FARMERS_IMPORT = "agripme.farmers.import"
FARMERS_SHOW = "agripme.farmers.show"
FARMERS_REENCRYPT = "agripme.farmers.reencrypt"

REQUIRED = (
    "national_id",
    "first_name",
    "last_name",
    "phone",
    "region",
    "prefecture",
    "canton",
    "village",
    "crop",
    "area_ha",
)
_ALIASES = {
    "national_id": "national_id",
    "numero_carte": "national_id",
    "first_name": "first_name",
    "prenom": "first_name",
    "last_name": "last_name",
    "nom": "last_name",
    "phone": "phone",
    "telephone": "phone",
    "region": "region",
    "prefecture": "prefecture",
    "canton": "canton",
    "village": "village",
    "crop": "crop",
    "culture": "crop",
    "area_ha": "area_ha",
    "superficie_ha": "area_ha",
    "operator": "operator",
    "operateur": "operator",
}
_OPERATORS = {
    "flooz": Operator.FLOOZ,
    "moov": Operator.FLOOZ,
    "tmoney": Operator.TMONEY,
    "t-money": Operator.TMONEY,
    "togocom": Operator.TMONEY,
}
_NATIONAL_ID = re.compile(r"^[A-Z0-9][A-Z0-9/.\-]{2,39}$")
_AREA = re.compile(r"^(\d{1,9})(?:[.,](\d+))?$")
_MAX_TEXT = 200


def fold(value: str) -> str:
    """Lower case, accents removed, spaces and dashes as `_`: how headers and regions match."""
    decomposed = unicodedata.normalize("NFKD", value.strip().lower())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[\s\-]+", "_", bare)


_REGIONS = {fold(region.value): region for region in Region}


@lru_cache(maxsize=1024)
def find_region(raw: str) -> Region | None:
    """The region a spelling names, case and accents ignored (None when none)."""
    # a registry spells its few regions the same way on most rows: fold each spelling once
    return _REGIONS.get(fold(raw))


@dataclass(frozen=True)
class RowError:
    """One invalid or duplicate field of one data row (row 1 is the first data row)."""

    row: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class FarmerRow:
    """A valid, normalised registry row, still in plaintext."""

    national_id: str
    first_name: str
    last_name: str
    phone: str
    region: Region
    prefecture: str
    canton: str
    village: str
    crop: str
    area_m2: int
    operator: Operator | None


@dataclass
class ImportReport:
    """What an import did; `updated` counts known farmers, `unchanged` is the part of them
    whose row was identical (and so not rewritten)."""

    accepted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    duplicates: int = 0
    errors: list[RowError] = field(default_factory=list)
    errors_omitted: int = 0
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """True when every row was accepted or updated."""
        return self.rejected == 0 and self.duplicates == 0

    def add_error(self, error: RowError) -> None:
        # counts stay exact; only the listed messages are bounded
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(error)
        else:
            self.errors_omitted += 1

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "accepted": self.accepted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "dry_run": self.dry_run,
            "errors": [error.as_dict() for error in self.errors],
        }
        if self.errors_omitted:
            data["errors_omitted"] = self.errors_omitted
        return data


# --- parsing and validation --------------------------------------------------------------


def parse_area(raw: str) -> int:
    """`"1,25"` or `"1.25"` hectares → 12,500 m²; `ValueError` with the reason otherwise."""
    match = _AREA.match(raw.strip())
    if match is None:
        raise ValueError(f"{raw.strip()!r} is not a positive number of hectares")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > 4:
        fraction = fraction.rstrip("0")
        if len(fraction) > 4:
            raise ValueError(f"{raw.strip()!r} is more precise than a square metre (4 decimals)")
    area = int(whole) * 10_000 + int(fraction.ljust(4, "0") or 0)
    if area <= 0:
        raise ValueError("the area must be greater than zero")
    return area


def format_area(area_m2: int) -> str:
    """12,500 m² → `"1.25"` hectares."""
    whole, rest = divmod(area_m2, 10_000)
    return f"{whole}.{rest:04d}".rstrip("0").rstrip(".") if rest else str(whole)


def _text(value: str, name: str, errors: list[tuple[str, str]]) -> str:
    cleaned, problem = checked_text(value, max_chars=_MAX_TEXT)
    if problem is not None:
        errors.append((name, f"{name} {problem}"))
    return cleaned


def validate_row(values: dict[str, str]) -> FarmerRow | list[tuple[str, str]]:
    """A normalised row, or every (field, message) that is wrong with it."""
    errors: list[tuple[str, str]] = []
    national_id = re.sub(r"\s+", "", values.get("national_id", "")).upper()
    if not national_id:
        errors.append(("national_id", "national ID is missing"))
    elif not _NATIONAL_ID.match(national_id):
        errors.append(
            ("national_id", "national ID must be 3 to 40 letters, digits, '/', '.' or '-'")
        )
    first_name = _text(values.get("first_name", ""), "first_name", errors)
    last_name = _text(values.get("last_name", ""), "last_name", errors)
    phone = ""
    try:
        phone = normalise(values.get("phone", ""))
    except InvalidMsisdn as exc:
        errors.append(("phone", str(exc)))
    region = find_region(values.get("region", ""))
    if region is None:
        errors.append(
            (
                "region",
                f"{values.get('region', '').strip()!r} is not a region of Togo "
                "(Maritime, Plateaux, Centrale, Kara, Savanes)",
            )
        )
    prefecture = _text(values.get("prefecture", ""), "prefecture", errors)
    canton = _text(values.get("canton", ""), "canton", errors)
    village = _text(values.get("village", ""), "village", errors)
    crop = _text(values.get("crop", ""), "crop", errors)
    area_m2 = 0
    try:
        area_m2 = parse_area(values.get("area_ha", ""))
    except ValueError as exc:
        errors.append(("area_ha", str(exc)))
    operator: Operator | None = None
    raw_operator = values.get("operator", "").strip().lower()
    if raw_operator:
        operator = _OPERATORS.get(raw_operator)
        if operator is None:
            errors.append(("operator", f"{raw_operator!r} is not an operator: flooz or tmoney"))
    if errors:
        return errors
    assert region is not None
    return FarmerRow(
        national_id,
        first_name,
        last_name,
        phone,
        region,
        prefecture,
        canton,
        village,
        crop,
        area_m2,
        operator,
    )


def _header(names: list[str]) -> list[str]:
    """Canonical column names of a header; refuses a missing or doubled column."""
    columns = [_ALIASES.get(fold(name), "") for name in names]
    given: dict[str, str] = {}
    for raw, column in zip(names, columns, strict=True):
        if not column:
            continue
        if column in given:
            # `phone` and `telephone` both present: which one pays the farmer is a guess
            raise ValidationError(
                f"header: columns {given[column]!r} and {raw.strip()!r} both give the"
                f" {column}; keep one"
            )
        given[column] = raw.strip()
    missing = [name for name in REQUIRED if name not in given]
    if missing:
        raise ValidationError(f"the file has no {missing[0]} column (nor its French name)")
    return columns


def _row_error(error: csvsafe.CsvFormatError, columns: list[str], header: list[str]) -> str:
    """A refusal of the whole file naming the data row (1 = first) and the field."""
    if error.record == 0:
        return f"header: {error.field(header)} {error.message}"
    return f"row {error.record}: {error.field(columns)} {error.message}; nothing was imported"


def iter_file_rows(path: Path) -> Iterator[tuple[int, FarmerRow | list[tuple[str, str]]]]:
    """(row number, validated row or its errors) for each data row, streamed.

    A file the CSV reader cannot trust (a field over 4 KB, a quote left open, a doubled
    column) raises ValidationError: the import's one transaction then keeps nothing.
    """
    columns: list[str] = []
    header: list[str] = []
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            header_line = handle.readline()
            if not header_line.strip():
                raise ValidationError("the file is empty: expected a header line")
            # sniff only the header: data rows may hold decimal commas ("1,5") in a ';' file
            delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
            reader = csvsafe.records(itertools.chain([header_line], handle), delimiter)
            header = next(reader).cells
            columns = _header(header)
            width = len(columns)
            for number, _line, cells in reader:
                if not any(cell.strip() for cell in cells):
                    continue
                if len(cells) > width and any(cell.strip() for cell in cells[width:]):
                    # an unquoted delimiter inside a field shifts every field after it
                    yield number, [("row", f"{len(cells)} fields, the header has {width}")]
                    continue
                values = {name: cell for name, cell in zip(columns, cells, strict=False) if name}
                yield number, validate_row(values)
    except csvsafe.CsvFormatError as exc:
        raise ValidationError(_row_error(exc, columns, header)) from None
    except UnicodeDecodeError:
        raise ValidationError(f"{path.name} is not UTF-8 text: export it as CSV UTF-8") from None
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from None


# --- import ---------------------------------------------------------------------------------

_STAGING_COLUMNS = (
    "rownum",
    "national_id_enc",
    "national_id_bidx",
    "first_name_enc",
    "last_name_enc",
    "phone_enc",
    "phone_bidx",
    "region",
    "prefecture",
    "canton",
    "village",
    "crop",
    "area_m2",
    "operator",
    "record_digest",
)
_FARMER_COLUMNS = _STAGING_COLUMNS[1:]
_UPSERT = f"""
INSERT INTO farmers ({", ".join(_FARMER_COLUMNS)})
SELECT {", ".join(_FARMER_COLUMNS)} FROM import_staging ORDER BY rownum
ON CONFLICT (national_id_bidx) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in _FARMER_COLUMNS if c != "national_id_bidx")}
WHERE farmers.record_digest <> EXCLUDED.record_digest
RETURNING (xmax = 0) AS inserted
"""  # noqa: S608 - column names are constants of this module


def _record_digest(keys: PiiKeys, row: FarmerRow) -> bytes:
    parts = (
        row.national_id,
        row.first_name,
        row.last_name,
        row.phone,
        row.region.value,
        row.prefecture,
        row.canton,
        row.village,
        row.crop,
        str(row.area_m2),
        row.operator.value if row.operator else "",
    )
    return keys.blind_index.digest("\x1f".join(parts), RECORD)


# COPY's text format: backslash escapes, `\N` for NULL, bytea as `\x` hex
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value: str | bytes | int | None) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, int):
        return str(value)
    return value.translate(_COPY_ESCAPES)


def _staging_line(
    keys: PiiKeys, number: int, row: FarmerRow, nid_bidx: bytes, phone_bidx: bytes
) -> str:
    """The row as one line of COPY text for the staging table, encrypted."""
    ring = keys.keyring
    values = (
        number,
        ring.encrypt(row.national_id, NATIONAL_ID),
        nid_bidx,
        ring.encrypt(row.first_name, FIRST_NAME),
        ring.encrypt(row.last_name, LAST_NAME),
        ring.encrypt(row.phone, PHONE),
        phone_bidx,
        row.region.value,
        row.prefecture,
        row.canton,
        row.village,
        row.crop,
        row.area_m2,
        row.operator.value if row.operator else None,
        _record_digest(keys, row),
    )
    return "\t".join(map(_copy_field, values)) + "\n"


# Who already holds each phone of the staged chunk: only phones with a holder come back.
_HELD = text(
    "SELECT s.rownum, f.national_id_bidx FROM import_staging s"
    " JOIN farmers f ON f.phone_bidx = s.phone_bidx"
)


def _stage(session: Session, block: bytes) -> None:
    """Replace the staging table's rows with the chunk's, by one COPY of prepared text."""
    session.execute(text("TRUNCATE import_staging"))
    raw = session.connection().connection.driver_connection
    assert raw is not None
    statement = f"COPY import_staging ({', '.join(_STAGING_COLUMNS)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(block)


def _write_batch(
    session: Session,
    batch: _Batch,
    seen: tuple[set[bytes], set[bytes]],
    report: ImportReport,
) -> None:
    """Count the batch's invalid rows; stage its valid ones, drop the duplicates (of the
    database first, then of earlier rows) and upsert the rest."""
    for number, errors in batch.invalid:
        report.rejected += 1
        for field_name, message in errors:
            report.add_error(RowError(number, field_name, message))
    if not batch.numbers:
        return
    _stage(session, batch.copy_block)
    held = {rownum: bytes(owner) for rownum, owner in session.execute(_HELD)}
    seen_ids, seen_phones = seen
    dropped: list[int] = []
    for number, nid_bidx, phone_bidx in zip(
        batch.numbers, batch.nid_bidx, batch.phone_bidx, strict=True
    ):
        owner = held.get(number)
        if owner is not None and owner != nid_bidx:
            message = RowError(number, "phone", "phone number already held by another farmer")
        elif nid_bidx in seen_ids:
            message = RowError(number, "national_id", "national ID appears earlier in the file")
        elif phone_bidx in seen_phones:
            message = RowError(number, "phone", "phone number given to another farmer earlier")
        else:
            seen_ids.add(nid_bidx)
            seen_phones.add(phone_bidx)
            continue
        report.duplicates += 1
        report.add_error(message)
        dropped.append(number)
    if dropped:
        session.execute(
            text("DELETE FROM import_staging WHERE rownum = ANY(:rows)"), {"rows": dropped}
        )
    if len(dropped) == len(batch.numbers):
        return
    written = session.execute(text(_UPSERT)).scalars().all()
    inserted = sum(1 for flag in written if flag)
    # every staged row is either inserted or names a known farmer (updated only when
    # its record changed), so the known ones need no lookup of their own
    known = len(batch.numbers) - len(dropped) - inserted
    report.accepted += inserted
    report.updated += known
    report.unchanged += known - (len(written) - inserted)


@dataclass(frozen=True)
class _Batch:
    """The invalid rows read since the previous batch, and up to a chunk of valid ones
    with their staging rows as COPY text (encrypted ahead of the duplicate checks, so
    that work overlaps the database's; duplicates are deleted from staging after)."""

    invalid: list[tuple[int, list[tuple[str, str]]]]
    # the valid rows' numbers and blind indexes, in parallel lists: they cross a pipe
    # between processes, where one object per row would cost more than the row's work
    numbers: list[int]
    nid_bidx: list[bytes]
    phone_bidx: list[bytes]
    copy_block: bytes


def _batches(
    rows: Iterable[tuple[int, FarmerRow | list[tuple[str, str]]]],
    keys: PiiKeys,
    size: int,
) -> Iterator[_Batch]:
    """Group rows into batches of at most `size` valid rows, each prepared for staging."""
    invalid: list[tuple[int, list[tuple[str, str]]]] = []
    numbers: list[int] = []
    nids: list[bytes] = []
    phones: list[bytes] = []
    lines: list[str] = []
    digest = keys.blind_index.digest
    for number, result in rows:
        if isinstance(result, list):
            invalid.append((number, result))
            continue
        nid_bidx = digest(result.national_id, NATIONAL_ID)
        phone_bidx = digest(result.phone, PHONE)
        lines.append(_staging_line(keys, number, result, nid_bidx, phone_bidx))
        numbers.append(number)
        nids.append(nid_bidx)
        phones.append(phone_bidx)
        if len(numbers) >= size:
            yield _Batch(invalid, numbers, nids, phones, "".join(lines).encode("utf-8"))
            invalid, numbers, nids, phones, lines = [], [], [], [], []
    if invalid or numbers:
        yield _Batch(invalid, numbers, nids, phones, "".join(lines).encode("utf-8"))


_END = object()


def _produce(batches: Iterator[_Batch], out: queue.Queue[Any], stop: threading.Event) -> None:
    """Put each batch, then `_END` (or the exception that stopped reading), on `out`."""
    item: Any = _END
    try:
        for batch in batches:
            if not _put(out, batch, stop):
                return
    except BaseException as exc:  # handed to the importing thread, which raises it
        item = exc
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    _put(out, item, stop)


def _put(out: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _read_ahead_thread(batches: Iterator[_Batch]) -> Iterator[_Batch]:
    """The same batches in the same order, prepared on a second thread.

    Parsing, validating and encrypting hold the GIL, while waiting for PostgreSQL does
    not: the next batch is prepared while the database writes this one. At most
    `_READ_AHEAD` batches wait in between, so memory stays bounded.
    """
    out: queue.Queue[Any] = queue.Queue(maxsize=_READ_AHEAD)
    stop = threading.Event()
    reader = threading.Thread(
        target=_produce, args=(batches, out, stop), name="sika-import-reader", daemon=True
    )
    reader.start()
    try:
        while True:
            item = out.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def _produce_to_pipe(batches: Iterator[_Batch], pipe: Connection) -> None:
    """In the reader process: send each batch, then ("end",) or ("error", exception)."""
    try:
        for batch in batches:
            pipe.send(("batch", batch))
        pipe.send(("end",))
    except BaseException as exc:
        try:
            pipe.send(("error", exc))
        except Exception:  # an exception that does not pickle: keep its words
            pipe.send(("error", RuntimeError(f"reading the registry file failed: {exc!r}")))
    finally:
        pipe.close()


def _read_ahead_process(batches: Iterator[_Batch]) -> Iterator[_Batch]:
    """The same batches in the same order, prepared by a forked process.

    The process inherits the keys and the open generator, so nothing secret is pickled;
    it uses a second core while this one and PostgreSQL write. A pipe's send blocks
    until the previous batch was received, so at most one batch waits: bounded memory.
    The process touches no database connection and ends with `os._exit`.
    """
    context = mp.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    reader = context.Process(
        target=_produce_to_pipe, args=(batches, send), name="sika-import-reader", daemon=True
    )
    reader.start()
    send.close()
    try:
        while True:
            try:
                message = receive.recv()
            except EOFError:
                raise RuntimeError(
                    f"the registry reader process stopped (exit code {reader.exitcode})"
                ) from None
            if message[0] == "end":
                return
            if message[0] == "error":
                raise message[1]
            yield message[1]
    finally:
        receive.close()
        if reader.is_alive():
            reader.kill()
        reader.join()


def _read_ahead(path: Path, batches: Iterator[_Batch]) -> Iterator[_Batch]:
    """Batches prepared ahead of the writer: by a second process for a large file where
    the platform can fork one cheaply, else by a second thread."""
    try:
        large = path.stat().st_size >= PROCESS_FROM_BYTES
    except OSError:
        large = False  # iter_file_rows reports the unreadable file in its own words
    # a daemonic process (a worker pool's) may not start one of its own
    forkable = sys.platform == "linux" and not mp.current_process().daemon
    if large and forkable:
        return _read_ahead_process(batches)
    return _read_ahead_thread(batches)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex: how an import request names its file."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from None
    return digest.hexdigest()


def import_arguments(path: Path) -> dict[str, Any]:
    """What an `agripme.farmers.import` request signs: the file's name and its SHA-256."""
    return {"file": path.name, "sha256": file_sha256(path)}


def import_farmers(
    factory: sessionmaker[Session],
    path: Path,
    keys: PiiKeys,
    *,
    request: SignedRequest | None,
    dry_run: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Import a registry CSV: valid rows are inserted or update the farmer they name.

    One transaction for the whole file, committed at the end (rolled back for a dry run,
    which therefore reports exactly what a real run would do and needs no `request`). A
    real run is a maker's signed `agripme.farmers.import` of this very file, checked and
    recorded before the first row; the audit log's writer then waits for the import's
    commit, so other signed acts wait too (about 40 s for a million rows).
    """
    if request is None and not dry_run:
        raise AuthorizationError(
            "importing farmers is a maker's signed request: pass --agent NAME (or --dry-run)"
        )
    report = ImportReport(dry_run=dry_run)
    session = factory()
    try:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _IMPORT_LOCK})
        if request is not None and not dry_run:
            authorize(
                session,
                request,
                command=FARMERS_IMPORT,
                arguments=import_arguments(path),
                roles=[Role.MAKER],
            )
        # the staging table has no statistics: probe the registry's indexes per staged
        # row rather than hash the whole registry for every chunk
        session.execute(text("SET LOCAL enable_hashjoin = off"))
        session.execute(text("SET LOCAL enable_mergejoin = off"))
        session.execute(
            text(
                "CREATE TEMP TABLE import_staging (rownum bigint, national_id_enc bytea, "
                "national_id_bidx bytea, first_name_enc bytea, last_name_enc bytea, "
                "phone_enc bytea, phone_bidx bytea, region text, prefecture text, canton text, "
                "village text, crop text, area_m2 bigint, operator text, record_digest bytea) "
                "ON COMMIT DROP"
            )
        )
        # 32-byte keyed digests only: bounded memory, and no plaintext kept
        seen: tuple[set[bytes], set[bytes]] = (set(), set())
        for batch in _read_ahead(path, _batches(iter_file_rows(path), keys, chunk_rows)):
            _write_batch(session, batch, seen, report)
        if dry_run:
            session.rollback()
        else:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    report.errors.sort(key=lambda error: error.row)
    return report


# --- lookup and decryption ---------------------------------------------------------------


def normalise_national_id(value: str) -> str:
    """A national ID as stored before encryption: no spaces, upper case."""
    return re.sub(r"\s+", "", value or "").upper()


def get_farmer(session: Session, national_id: str, keys: PiiKeys) -> Farmer:
    """The farmer with this national ID (found through the blind index), or `NotFoundError`."""
    digest = keys.blind_index.digest(normalise_national_id(national_id), NATIONAL_ID)
    farmer = session.scalar(select(Farmer).where(Farmer.national_id_bidx == digest))
    if farmer is None:
        raise NotFoundError("no farmer with that national ID")
    return farmer


def find_by_phone(session: Session, msisdn: str, keys: PiiKeys) -> Farmer | None:
    """The farmer holding this phone number, if any."""
    digest = keys.blind_index.digest(normalise(msisdn), PHONE)
    return session.scalar(select(Farmer).where(Farmer.phone_bidx == digest))


def farmer_msisdn(farmer: Farmer, keys: PiiKeys) -> str:
    """The farmer's phone number, `228XXXXXXXX`, decrypted for paying."""
    return keys.keyring.decrypt(farmer.phone_enc, PHONE)


def farmer_operator(farmer: Farmer, keys: PiiKeys) -> Operator:
    """Where to pay the farmer: the registry's override, else the prefix's operator."""
    return route(farmer_msisdn(farmer, keys), farmer.operator)


def show_arguments(farmer_id: int, *, reveal: bool = False) -> dict[str, Any]:
    """What an `agripme.farmers.show` request signs: the farmer's id (never the national
    ID: the audit log is stored readable) and whether the phone number is shown whole."""
    return {"farmer_id": farmer_id, "reveal": reveal}


def show_farmer(
    session: Session, request: SignedRequest, farmer_id: int, keys: PiiKeys, *, reveal: bool
) -> dict[str, Any]:
    """One farmer decrypted for a screen, at a signed request recorded in the audit log:
    a maker, approver or auditor sees the phone number masked; only an auditor sees it
    whole (`reveal`)."""
    authorize(
        session,
        request,
        command=FARMERS_SHOW,
        arguments=show_arguments(farmer_id, reveal=reveal),
        roles=[Role.AUDITOR] if reveal else [Role.MAKER, Role.APPROVER, Role.AUDITOR],
    )
    farmer = session.get(Farmer, farmer_id)
    if farmer is None:
        raise NotFoundError(f"no farmer {farmer_id}")
    return farmer_view(farmer, keys, reveal=reveal)


def farmer_view(farmer: Farmer, keys: PiiKeys, *, reveal: bool = False) -> dict[str, Any]:
    """The farmer for a screen: phone masked unless `reveal` (which the caller authorised)."""
    ring = keys.keyring
    phone = farmer_msisdn(farmer, keys)
    return {
        "id": farmer.id,
        "national_id": ring.decrypt(farmer.national_id_enc, NATIONAL_ID),
        "first_name": ring.decrypt(farmer.first_name_enc, FIRST_NAME),
        "last_name": ring.decrypt(farmer.last_name_enc, LAST_NAME),
        "phone": phone if reveal else mask(phone),
        "operator": route(phone, farmer.operator).value,
        "operator_override": farmer.operator,
        "region": farmer.region,
        "prefecture": farmer.prefecture,
        "canton": farmer.canton,
        "village": farmer.village,
        "crop": farmer.crop,
        "area_ha": format_area(farmer.area_m2),
        "created_at": farmer.created_at.isoformat() if farmer.created_at else None,
        "updated_at": farmer.updated_at.isoformat() if farmer.updated_at else None,
    }


_ENCRYPTED = (
    ("national_id_enc", NATIONAL_ID),
    ("first_name_enc", FIRST_NAME),
    ("last_name_enc", LAST_NAME),
    ("phone_enc", PHONE),
)


def reencrypt_arguments(keys: PiiKeys) -> dict[str, Any]:
    """What an `agripme.farmers.reencrypt` request signs: the key version to move to."""
    return {"key_version": keys.keyring.current}


def reencrypt_farmers(
    factory: sessionmaker[Session],
    request: SignedRequest,
    keys: PiiKeys,
    *,
    page: int = 1000,
) -> int:
    """Move every farmer's personal data to the current key version, at an admin's signed
    request (key management is the admin's); returns rows rewritten.

    One page per transaction, so a long rotation never holds locks on the whole registry
    and can be resumed after an interruption (with a new request). The request is checked
    and recorded in the first page's transaction.
    """
    ring = keys.keyring
    rewritten = 0
    last_id = 0
    first = True
    while True:
        with factory() as session, session.begin():
            if first:
                authorize(
                    session,
                    request,
                    command=FARMERS_REENCRYPT,
                    arguments=reencrypt_arguments(keys),
                    roles=[Role.ADMIN],
                )
                first = False
            farmers = session.scalars(
                select(Farmer).where(Farmer.id > last_id).order_by(Farmer.id).limit(page)
            ).all()
            if not farmers:
                return rewritten
            for farmer in farmers:
                changed = False
                for column, context in _ENCRYPTED:
                    token = getattr(farmer, column)
                    if ring.version_of(token) != ring.current:
                        setattr(farmer, column, ring.reencrypt(token, context))
                        changed = True
                rewritten += changed
            last_id = farmers[-1].id
