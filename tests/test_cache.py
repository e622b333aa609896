"""The results store: round trips, keys, corruption detection, killed writers, concurrent processes."""
from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from quantwm.cache import SCHEMA_VERSION, CacheCorruptError, Entry, ResultsCache, entry_key


@pytest.fixture
def cache(tmp_path: Path) -> ResultsCache:
    return ResultsCache(tmp_path / "results")


def media_dirs(cache: ResultsCache) -> set[str]:
    return {p.name for p in cache.media_root.iterdir()}


def put_sample(cache: ResultsCache, key: str = "k1", **value) -> Entry:
    return cache.put(key, "rollout", {"success": 0.5, **value}, media={"video.mp4": b"\x00mp4" * 100, "z.npz": b"npz"})


def test_round_trip_bytes_and_path(cache: ResultsCache, tmp_path: Path) -> None:
    src = tmp_path / "calib.safetensors"
    src.write_bytes(os.urandom(3 * (1 << 20) + 7))  # spans several copy chunks
    value = {"success": [1, 0, 1], "dist": 0.25, "nested": {"a": None}}
    put = cache.put("abc", "eval", value, media={"video.mp4": b"frames", "calib.safetensors": src},
                    meta={"env": "pusht", "label": "int4"})
    got = cache.get("abc")
    assert got == put
    assert got.value == value and got.kind == "eval" and got.meta == {"env": "pusht", "label": "int4"}
    assert got.media["video.mp4"].read_bytes() == b"frames"
    assert got.media["calib.safetensors"].read_bytes() == src.read_bytes()
    assert all(p.is_absolute() for p in got.media.values())
    assert src.exists()  # a source path is copied, not moved
    assert cache.get("missing") is None


def test_entry_without_media(cache: ResultsCache) -> None:
    cache.put("plain", "calib", {"x": 1})
    assert cache.get("plain").value == {"x": 1} and cache.get("plain").media == {}
    assert media_dirs(cache) == set()


def test_entry_key_depends_on_every_part() -> None:
    base = entry_key("eval", {"bits": 4, "method": "rtn"}, "aa" * 32)
    assert base == entry_key("eval", {"method": "rtn", "bits": 4}, "aa" * 32)  # dict order does not matter
    assert len(base) >= 32 and int(base, 16) >= 0
    others = {
        entry_key("probe", {"bits": 4, "method": "rtn"}, "aa" * 32),
        entry_key("eval", {"bits": 8, "method": "rtn"}, "aa" * 32),
        entry_key("eval", {"bits": 4, "method": "rtn"}, "bb" * 32),
        entry_key("eval", {"bits": 4, "method": "rtn"}, "aa" * 32, schema=SCHEMA_VERSION + 1),
    }
    assert base not in others and len(others) == 4


def test_entry_keys_are_valid_cache_keys(cache: ResultsCache) -> None:
    key = entry_key("eval", {"bits": 4}, "00" * 32)
    cache.put(key, "eval", {"ok": True}, media={"a.npz": b"1"})
    assert cache.get(key).value == {"ok": True}


@pytest.mark.parametrize("name", ["", "a/b.mp4", "../x", "..", ".", ".hidden", "a\\b", "nul\0"])
def test_invalid_media_names_are_rejected(cache: ResultsCache, name: str) -> None:
    with pytest.raises(ValueError, match="media name"):
        cache.put("k", "eval", {}, media={name: b"x"})
    assert cache.get("k") is None and media_dirs(cache) == set()


@pytest.mark.parametrize("key", ["", "a/b", "../k", "-k", "k k"])
def test_invalid_keys_are_rejected(cache: ResultsCache, key: str) -> None:
    with pytest.raises(ValueError, match="cache key"):
        cache.put(key, "eval", {})


def test_corrupt_value_is_detected_logged_and_removed(cache: ResultsCache, caplog: pytest.LogCaptureFixture) -> None:
    entry = put_sample(cache)
    with sqlite3.connect(cache.db_path) as conn:
        conn.execute("UPDATE entries SET value = ? WHERE key = 'k1'", ('{"success":1.0}',))
    conn.close()
    with caplog.at_level(logging.WARNING, logger="quantwm.cache"):
        assert cache.get("k1") is None
    assert "cache entry k1 is corrupt (value checksum mismatch); it will be recomputed" in caplog.text
    assert cache.list() == [] and not entry.media["video.mp4"].parent.exists()
    assert put_sample(cache, success=0.75) == cache.get("k1")


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.unlink(), "media 'video.mp4' missing"),
    (lambda p: p.write_bytes(p.read_bytes()[:-1]), "media 'video.mp4' has 399 bytes, expected 400"),
    (lambda p: p.write_bytes(b"\x01" + p.read_bytes()[1:]), "media 'video.mp4' checksum mismatch"),
])
def test_damaged_media_is_detected_logged_and_removed(cache: ResultsCache, caplog: pytest.LogCaptureFixture,
                                                       damage, reason: str) -> None:
    entry = put_sample(cache)
    damage(entry.media["video.mp4"])
    with caplog.at_level(logging.WARNING, logger="quantwm.cache"):
        assert cache.get("k1") is None
    assert f"cache entry k1 is corrupt ({reason})" in caplog.text
    assert cache.list() == [] and media_dirs(cache) == set()
    put_sample(cache)
    assert cache.get("k1") is not None


def test_replacing_an_entry_removes_its_old_media(cache: ResultsCache) -> None:
    first = put_sample(cache, success=0.1)
    second = put_sample(cache, success=0.9)
    assert first.media["video.mp4"].parent != second.media["video.mp4"].parent
    assert media_dirs(cache) == {second.media["video.mp4"].parent.name}
    assert cache.get("k1").value["success"] == 0.9
    cache.put("k1", "rollout", {"success": 0.0})  # replaced by one without media
    assert media_dirs(cache) == set()


def test_orphan_media_dir_is_never_served_and_is_collected(cache: ResultsCache) -> None:
    kept = put_sample(cache)
    orphan = cache.media_root / "k2-0123456789abcdef"  # what a writer killed before its commit leaves
    orphan.mkdir()
    (orphan / "video.mp4").write_bytes(b"partial")
    assert cache.get("k2") is None
    assert cache.gc() == 0 and orphan.exists()  # young: may belong to a put in progress
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    assert cache.gc() == 1 and not orphan.exists()
    assert cache.get("k1") == kept


def test_failed_put_keeps_the_old_entry_and_leaves_no_files(cache: ResultsCache, monkeypatch: pytest.MonkeyPatch) -> None:
    old = put_sample(cache, success=0.1)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        put_sample(cache, success=0.9)
    monkeypatch.undo()
    assert cache.get("k1") == old and media_dirs(cache) == {old.media["video.mp4"].parent.name}


def test_list_delete_clear(cache: ResultsCache) -> None:
    cache.put("a", "eval", {"i": 1}, meta={"env": "pusht"})
    cache.put("b", "probe", {"i": 2}, media={"v.mp4": b"12345"})
    cache.put("c", "eval", {"i": 3})
    infos = cache.list()
    assert [i.key for i in infos] == ["c", "b", "a"]  # newest first
    assert infos[2].meta == {"env": "pusht"} and infos[2].kind == "eval"
    assert infos[1].size == len('{"i":2}') + 5
    assert [i.key for i in cache.list("eval")] == ["c", "a"]
    assert cache.delete("b") and not cache.delete("b")
    assert cache.get("b") is None and media_dirs(cache) == set()
    cache.put("d", "probe", {}, media={"v.mp4": b"x"})
    assert cache.clear("eval") == 2 and [i.key for i in cache.list()] == ["d"]
    assert cache.clear() == 1 and cache.list() == [] and media_dirs(cache) == set()


def test_database_is_wal_and_shared_between_instances(tmp_path: Path) -> None:
    one, two = ResultsCache(tmp_path), ResultsCache(tmp_path)
    one.put("k", "eval", {"x": 1})
    assert two.get("k").value == {"x": 1}
    with sqlite3.connect(one.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_garbage_database_raises_a_clear_error(tmp_path: Path) -> None:
    tmp_path.joinpath("results.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(CacheCorruptError, match=r"results\.sqlite is corrupt .*quantwm cache clear"):
        ResultsCache(tmp_path)


def _payload(key: str, writer: int, i: int) -> bytes:
    return hashlib.sha256(f"{key}/{writer}/{i}".encode()).digest() * 64


def _writer(root: str, writer: int, rounds: int) -> None:
    cache = ResultsCache(Path(root))
    for i in range(rounds):
        for key in (f"own-{writer}-{i}", f"shared-{i % 4}"):
            cache.put(key, "eval", {"writer": writer, "i": i}, media={"v.mp4": _payload(key, writer, i)})
            entry = cache.get(key)
            if key.startswith("own"):  # a shared key's files vanish once the other writer replaces it
                assert entry.media["v.mp4"].read_bytes() == _payload(key, writer, i)


def test_concurrent_processes(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    rounds = 25
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, rounds)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    cache = ResultsCache(tmp_path)
    infos = cache.list()
    assert len(infos) == 2 * rounds + 4
    for info in infos:
        entry = cache.get(info.key)
        assert entry is not None
        assert entry.media["v.mp4"].read_bytes() == _payload(info.key, entry.value["writer"], entry.value["i"])
    assert media_dirs(cache) == {cache.get(i.key).media["v.mp4"].parent.name for i in infos}  # nothing leaked


def _endless_writer(root: str) -> None:
    cache = ResultsCache(Path(root))
    i = 0
    while True:
        cache.put("k", "eval", {"i": i}, media={"big.npz": _payload("k", 0, i) * 512})  # 1 MiB
        i += 1


def test_writer_killed_mid_put_leaves_a_valid_entry(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_endless_writer, args=(str(tmp_path),))
    proc.start()
    cache = ResultsCache(tmp_path)
    deadline = time.time() + 30
    while (entry := cache.get("k")) is None or entry.value["i"] < 3:  # a few commits, then kill mid-put
        assert time.time() < deadline and proc.is_alive()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    entry = cache.get("k")
    assert entry is not None
    assert entry.media["big.npz"].read_bytes() == _payload("k", 0, entry.value["i"]) * 512
    cache.gc(max_age_s=0)  # the killed writer's unreferenced directory, if it left one
    assert media_dirs(cache) == {entry.media["big.npz"].parent.name}
