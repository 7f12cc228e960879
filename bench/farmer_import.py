"""Benchmark 3, `import`: a generated farmer registry CSV imported through
`agripme.registry.import_farmers` in a child process → seconds and peak memory (RSS of
that process and its children), beside a bare COPY of the same file into PostgreSQL.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psycopg

from bench._common import (
    Benchmark,
    Outcome,
    PeakRss,
    Target,
    libpq,
    register,
    scratch_database,
    stopwatch,
)

HEADER = (
    "national_id,first_name,last_name,phone,region,prefecture,canton,village,crop,area_ha,operator"
)
# libphonenumber's mobile prefixes for Togo: every generated number is a valid mobile
_PREFIXES = ("70", "71", "72", "73", "78", "79", "90", "91", "92", "93", "96", "97", "98", "99")
_PLACES = (
    ("Maritime", "Zio", "Tsévié", "Davié"),
    ("Plateaux", "Kloto", "Kpalimé", "Agou"),
    ("Centrale", "Tchaoudjo", "Sokodé", "Kparatao"),
    ("Kara", "Kozah", "Lama", "Pya"),
    ("Savanes", "Tône", "Dapaong", "Nano"),
)
_CROPS = ("maïs", "sorgho", "mil", "riz", "soja", "igname")
_FIRST = ("Afi", "Kossi", "Ama", "Yao", "Akouvi", "Komlan", "Essi", "Kodjo", "Adjoa", "Mawuli")
_LAST = ("Mensah", "Agbeko", "Amouzou", "Kpodar", "Tchalla", "Gnassingbé", "Adjovi", "Dossou")


def phone_for(i: int) -> str:
    """A distinct valid mobile number per row, written the ways agents' files write them:
    mostly 8 bare digits, some with +228 and spaces, some as 228XXXXXXXX."""
    prefix, rest = _PREFIXES[i % len(_PREFIXES)], i // len(_PREFIXES)
    digits = f"{prefix}{rest:06d}"
    if i % 10 == 7:
        return f"+228 {digits[:2]} {digits[2:4]} {digits[4:6]} {digits[6:]}"
    if i % 10 == 9:
        return f"228{digits}"
    return digits


def write_csv(path: Path, rows: int) -> None:
    """A registry file of `rows` distinct, valid farmers."""
    if rows > len(_PREFIXES) * 1_000_000:
        raise ValueError("too many rows for distinct phone numbers")
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(HEADER + "\n")
        lines: list[str] = []
        for i in range(rows):
            region, prefecture, canton, village = _PLACES[i % len(_PLACES)]
            lines.append(
                f"TG-{i:09d},{_FIRST[i % 10]},{_LAST[i % 8]}-{i % 97},{phone_for(i)},{region},"
                f"{prefecture},{canton},{village} {i % 53},{_CROPS[i % 6]},"
                f"{1 + i % 7}.{i % 100:02d},{'tmoney' if i % 50 == 0 else ''}\n"
            )
            if len(lines) == 10_000:
                handle.writelines(lines)
                lines.clear()
        handle.writelines(lines)


def _child(url: str, path: str, conn: Connection) -> None:
    """Import the file as `sika farmers import` would, and report to the parent."""
    from sqlalchemy.orm import sessionmaker

    from agripme.registry import FARMERS_IMPORT, import_arguments, import_farmers
    from core import agents, db, signing
    from core.authority import sign_request
    from core.crypto import BlindIndex, Keyring, PiiKeys
    from core.db import unit_of_work

    keys = PiiKeys(Keyring({1: os.urandom(32)}), BlindIndex(os.urandom(32)))
    engine = db.build_engine(url, pool_size=1)
    factory = sessionmaker(engine, expire_on_commit=False)
    # the maker whose signed request an import is (not measured)
    maker = signing.generate_private_key()
    with unit_of_work(factory) as session:
        agents.add_agent(session, "bench", "maker", public_key_pem=signing.public_pem(maker))
    request = sign_request(FARMERS_IMPORT, import_arguments(Path(path)), "bench", maker)
    started = time.perf_counter()
    report = import_farmers(factory, Path(path), keys, request=request)
    elapsed = time.perf_counter() - started
    engine.dispose()
    conn.send(
        {
            "seconds": elapsed,
            "accepted": report.accepted,
            "rejected": report.rejected,
            "duplicates": report.duplicates,
            # Linux reports kilobytes; RUSAGE_CHILDREN is the largest child's own peak
            "ru_maxrss_self_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "ru_maxrss_child_bytes": (
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
            ),
        }
    )
    conn.close()


def _import_in_child(url: str, path: Path) -> tuple[dict[str, Any], PeakRss]:
    context = mp.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(url, str(path), send))
    process.start()
    with PeakRss(process.pid) as sampler:
        report = receive.recv()
        process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"the import process failed with exit code {process.exitcode}")
    return report, sampler


def _copy_reference(url: str, path: Path) -> float:
    """A bare COPY of the file into an unindexed text table: the database's floor."""
    with psycopg.connect(libpq(url)) as conn:
        conn.execute(
            "CREATE UNLOGGED TABLE raw_farmers (national_id text, first_name text, "
            "last_name text, phone text, region text, prefecture text, canton text, "
            "village text, crop text, area_ha text, operator text)"
        )
        with stopwatch() as elapsed:
            with (
                conn.cursor() as cursor,
                cursor.copy("COPY raw_farmers FROM STDIN (FORMAT csv, HEADER true)") as copy,
                path.open("rb") as handle,
            ):
                while block := handle.read(1 << 20):
                    copy.write(block)
            conn.commit()
        conn.execute("DROP TABLE raw_farmers")
        conn.commit()
    return elapsed()


def run(size: int) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="sika-bench-") as tmp:
        path = Path(tmp) / "farmers.csv"
        with stopwatch() as generated:
            write_csv(path, size)
        with scratch_database("import") as url:
            report, peak = _import_in_child(url, path)
            copy_seconds = _copy_reference(url, path)
        file_bytes = path.stat().st_size
    if report["accepted"] != size:
        raise RuntimeError(f"only {report['accepted']} of {size} rows were imported: {report}")
    peak_bytes = peak.peak
    seconds = report["seconds"]
    return Outcome(
        figures={
            "seconds": seconds,
            "rows_per_second": size / seconds,
            "peak_rss_bytes": peak_bytes,
            "peak_rss_mb": peak_bytes / 1_000_000,
            "peak_pss_mb": peak.peak_pss / 1_000_000,
            "ru_maxrss_self_mb": report["ru_maxrss_self_bytes"] / 1_000_000,
            "ru_maxrss_child_mb": report["ru_maxrss_child_bytes"] / 1_000_000,
            "accepted": report["accepted"],
            "file_bytes": file_bytes,
            "csv_generation_seconds": generated(),
        },
        reference={"copy_seconds": copy_seconds, "copy_rows_per_second": size / copy_seconds},
        scores={"seconds": seconds, "peak_rss_mb": peak_bytes / 1_000_000},
        method={
            "import": "import_farmers(factory, path, keys, request=a maker's signed request) in"
            " a fresh spawned process, timed "
            "inside it; one transaction, validation, encryption, blind indexes, duplicate "
            "checks, COPY staging and upserts",
            "memory": "peak of the import process tree's summed RSS, sampled every 250 ms "
            "with psutil (the forked reader's pages shared with its parent count twice); "
            "PSS (shared pages split) and each process's own ru_maxrss given beside it",
            "reference": "COPY of the same CSV into an unindexed unlogged text table",
            "file": "distinct farmers; 80 % bare 8-digit phones, 10 % '+228 ..' with spaces, "
            "10 % 228XXXXXXXX; accents in names and places; 1 row in 50 with an operator",
        },
    )


BENCHMARK = register(
    Benchmark(
        name="import",
        default_size=1_000_000,
        targets=(Target("seconds", "<=", 60, "s"), Target("peak_rss_mb", "<=", 500, "MB")),
        run=run,
        summary="a farmer registry CSV imported: seconds and peak memory",
    )
)
