"""Results store: experiment results as JSON rows in SQLite, with their media files beside them.

Layout under the root (default ``cache/results/``, or ``$QUANTWM_RESULTS_DIR``): ``results.sqlite`` (WAL mode, one row per key)
and ``media/<key>-<random hex>/<name>`` (the videos, ``.npz`` and ``.safetensors`` files of one row).
A ``put`` writes every media file into a fresh directory (temporary name, fsync, ``os.replace``),
then commits the row last, with checksums of its value and of every file; only then is the
directory of the row it replaced deleted. A writer killed at any point thus leaves the old entry or
the new one, plus at worst an unreferenced directory that :meth:`ResultsCache.gc` removes, and
``get`` verifies every checksum, so a damaged entry is logged, dropped and recomputed, never served.
A damaged SQLite file raises :class:`CacheCorruptError` rather than being moved aside: another
process may still hold it open, and moving it would split concurrent writers over two databases.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RESULTS_DIR_ENV = "QUANTWM_RESULTS_DIR"  # another results root (tests, several independent stores)
SCHEMA_VERSION = 1  # bump when the meaning or layout of stored results changes: old keys then miss
BUSY_TIMEOUT_S = 30.0  # a writer waits this long for another process's transaction

log = logging.getLogger("quantwm.cache")

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_CHUNK = 1 << 20
_TABLE = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    schema INTEGER NOT NULL,
    created REAL NOT NULL,
    value TEXT NOT NULL,
    value_sha256 TEXT NOT NULL,
    media_dir TEXT NOT NULL,
    manifest TEXT NOT NULL,
    meta TEXT NOT NULL,
    size INTEGER NOT NULL
)"""
_INDEX = "CREATE INDEX IF NOT EXISTS entries_kind_created ON entries (kind, created)"
_COLUMNS = "key, kind, created, value, value_sha256, media_dir, manifest, meta"


class CacheCorruptError(RuntimeError):
    """The SQLite file of the results cache is damaged or is not a database."""


@dataclass(frozen=True)
class Entry:
    """One verified result: ``media`` maps each file name to its absolute path (valid until the
    entry is replaced or deleted)."""

    key: str
    kind: str
    created: float
    value: dict
    media: dict[str, Path]
    meta: dict


@dataclass(frozen=True)
class EntryInfo:
    """A listing row (no verification): ``size`` is the bytes of the value text plus its media."""

    key: str
    kind: str
    created: float
    meta: dict
    size: int


def _canonical(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_key(kind: str, config: dict, weights_sha256: str, schema: int = SCHEMA_VERSION) -> str:
    """Hex SHA-256 (64 characters) of the canonical JSON of kind, config, weights hash and schema."""
    payload = {"kind": kind, "config": config, "weights_sha256": weights_sha256, "schema": schema}
    return _sha256(_canonical(payload).encode())


def _check_media_name(name: str) -> None:
    if not isinstance(name, str) or not name or name in (".", "..") or name.startswith("."):
        raise ValueError(f"media name {name!r} must be a non-empty file name not starting with '.'")
    if any(c in name for c in "/\\\0"):
        raise ValueError(f"media name {name!r} must be a plain file name (no '/', '\\' or NUL)")


def _chunks(source: bytes | bytearray | memoryview | str | os.PathLike) -> Iterator[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
        return
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"media must be bytes or a path, not {type(source).__name__}")
    with open(source, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    for chunk in _chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


class ResultsCache:
    """Durable, process- and thread-safe store of JSON results plus media files (one SQLite
    connection per call)."""

    def __init__(self, root: Path | None = None) -> None:
        if root is None and os.environ.get(RESULTS_DIR_ENV):
            root = Path(os.environ[RESULTS_DIR_ENV])
        if root is None:
            from quantwm.runtime import CACHE  # imported here: it loads torch, which the store never needs

            root = CACHE / "results"
        self.root = Path(root).resolve()
        self.media_root = self.root / "media"
        self.db_path = self.root / "results.sqlite"
        self.media_root.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_TABLE)
            conn.execute(_INDEX)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh autocommit connection; SQLite corruption errors become CacheCorruptError."""
        try:
            # timeout= is SQLite's busy_timeout: a locked database is waited for, not an error
            conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                conn.execute("PRAGMA synchronous=FULL")
                yield conn
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            if (exc.sqlite_errorcode or 0) & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                raise CacheCorruptError(
                    f"results cache database {self.db_path} is corrupt ({exc}); every result in it can be "
                    f"recomputed: run `quantwm cache clear` or delete {self.db_path} and its -wal / -shm files"
                ) from exc
            raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its start."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def put(self, key: str, kind: str, value: dict, *, media: dict[str, bytes | Path] | None = None,
            meta: dict | None = None) -> Entry:
        """Store ``value`` (JSON-serialisable) under ``key``, replacing any entry there. ``media``
        maps file names to bytes or to a path whose file is copied (the source is left in place)."""
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"cache key {key!r} must be 1-128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'")
        media = dict(media or {})
        for name in media:
            _check_media_name(name)
        value_text = _canonical(value)
        meta = dict(meta or {})
        meta_text = _canonical(meta)
        media_dir = f"{key}-{secrets.token_hex(8)}" if media else ""
        directory = self.media_root / media_dir
        try:
            manifest = self._write_media(directory, media) if media else {}
            size = len(value_text.encode()) + sum(info["size"] for info in manifest.values())
            created = time.time()
            with self._transaction() as conn:
                old = conn.execute("SELECT media_dir FROM entries WHERE key = ?", (key,)).fetchone()
                conn.execute(
                    "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, kind, SCHEMA_VERSION, created, value_text, _sha256(value_text.encode()),
                     media_dir, _canonical(manifest), meta_text, size),
                )
        except BaseException:
            if media_dir:
                _remove(directory)
            raise
        if old is not None and old[0]:
            _remove(self.media_root / old[0])
        return Entry(key, kind, created, json.loads(value_text), {n: directory / n for n in manifest}, meta)

    def _write_media(self, directory: Path, media: dict[str, bytes | Path]) -> dict[str, dict]:
        """Write each file (temporary name, fsync, rename) into the new ``directory``; its manifest."""
        directory.mkdir()
        _fsync_dir(self.media_root)
        manifest = {}
        for name, source in media.items():
            tmp = directory / f".{name}.{secrets.token_hex(4)}.tmp"
            digest, size = hashlib.sha256(), 0
            with open(tmp, "xb") as out:
                for chunk in _chunks(source):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, directory / name)
            manifest[name] = {"size": size, "sha256": digest.hexdigest()}
        _fsync_dir(directory)
        return manifest

    def get(self, key: str) -> Entry | None:
        """The verified entry under ``key``, or None when absent or corrupt (a corrupt one is logged
        and removed)."""
        for _ in range(3):  # a concurrent put may replace the row while it is being verified: read again
            with self._connect() as conn:
                row = conn.execute(f"SELECT {_COLUMNS} FROM entries WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            entry, reason = self._verify(row)
            if entry is not None:
                return entry
            if self._drop_if_unchanged(row):
                log.warning("cache entry %s is corrupt (%s); it will be recomputed", key, reason)
                return None
        return None

    def _verify(self, row: tuple) -> tuple[Entry | None, str]:
        """The entry of a row, or None and the reason it fails its checksums."""
        key, kind, created, value_text, value_sha256, media_dir, manifest_text, meta_text = row
        if _sha256(value_text.encode()) != value_sha256:
            return None, "value checksum mismatch"
        try:
            value, manifest, meta = json.loads(value_text), json.loads(manifest_text), json.loads(meta_text)
        except json.JSONDecodeError as exc:
            return None, f"unreadable JSON: {exc}"
        if not (isinstance(value, dict) and isinstance(meta, dict) and isinstance(manifest, dict)
                and all(isinstance(i, dict) and {"size", "sha256"} <= i.keys() for i in manifest.values())):
            return None, "malformed row"
        directory = self.media_root / media_dir
        for name, info in manifest.items():
            path = directory / name
            try:
                if (size := path.stat().st_size) != info["size"]:
                    return None, f"media {name!r} has {size} bytes, expected {info['size']}"
                if _file_sha256(path) != info["sha256"]:
                    return None, f"media {name!r} checksum mismatch"
            except FileNotFoundError:
                return None, f"media {name!r} missing"
            except OSError as exc:
                return None, f"media {name!r} unreadable: {exc}"
        return Entry(key, kind, created, value, {n: directory / n for n in manifest}, meta), ""

    def _drop_if_unchanged(self, row: tuple) -> bool:
        """Delete a corrupt row and its media, unless a concurrent writer has replaced it since."""
        key, media_dir, value_sha256 = row[0], row[5], row[4]
        with self._transaction() as conn:
            deleted = conn.execute(
                "DELETE FROM entries WHERE key = ? AND value_sha256 = ? AND media_dir = ?", (key, value_sha256, media_dir)
            ).rowcount
        if deleted and media_dir:
            _remove(self.media_root / media_dir)
        return bool(deleted)

    def list(self, kind: str | None = None) -> list[EntryInfo]:
        """Entries (of ``kind``, or all), newest first, without verifying them."""
        query = "SELECT key, kind, created, meta, size FROM entries"
        args: tuple = ()
        if kind is not None:
            query, args = query + " WHERE kind = ?", (kind,)
        with self._connect() as conn:
            rows = conn.execute(query + " ORDER BY created DESC", args).fetchall()
        return [EntryInfo(key, k, created, json.loads(meta), size) for key, k, created, meta, size in rows]

    def delete(self, key: str) -> bool:
        """Remove the entry under ``key`` and its media; False when there was none."""
        with self._transaction() as conn:
            row = conn.execute("SELECT media_dir FROM entries WHERE key = ?", (key,)).fetchone()
            conn.execute("DELETE FROM entries WHERE key = ?", (key,))
        if row is not None and row[0]:
            _remove(self.media_root / row[0])
        return row is not None

    def clear(self, kind: str | None = None) -> int:
        """Remove every entry (of ``kind``, or all) with its media, then :meth:`gc`; the number removed."""
        where, args = (" WHERE kind = ?", (kind,)) if kind is not None else ("", ())
        with self._transaction() as conn:
            dirs = [d for (d,) in conn.execute("SELECT media_dir FROM entries" + where, args) if d]
            removed = conn.execute("DELETE FROM entries" + where, args).rowcount
        for media_dir in dirs:
            _remove(self.media_root / media_dir)
        self.gc()
        return removed

    def gc(self, max_age_s: float = 3600) -> int:
        """Remove media directories no row references, last modified over ``max_age_s`` ago (left by
        killed writers; keep ``max_age_s`` above the longest ``put``); the number removed."""
        with self._connect() as conn:
            referenced = {d for (d,) in conn.execute("SELECT media_dir FROM entries") if d}
        cutoff = time.time() - max_age_s
        removed = 0
        for path in self.media_root.iterdir():
            if path.name in referenced:
                continue
            try:
                if path.lstat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            _remove(path)
            removed += 1
        return removed
