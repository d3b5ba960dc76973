import sqlite3

import pytest

from dsp.errors import DSPError
from dsp.llm.cache import LLMCache, cache_key

BASE = {"endpoint": "completions", "model": "m", "prompt": "p", "temperature": 0.7, "max_tokens": 8, "sample_index": 0}


def test_key_ignores_order_and_none():
    a = cache_key(BASE)
    b = cache_key(dict(reversed(list(BASE.items()))) | {"seed": None})
    assert a == b


@pytest.mark.parametrize(
    "change",
    [
        {"sample_index": 1},
        {"model": "m2"},
        {"prompt": "q"},
        {"temperature": 0.0},
        {"endpoint": "chat"},
        {"max_tokens": 9},
        {"stop": ["\n"]},
        {"seed": 1},
    ],
)
def test_key_changes_with_anything_that_changes_the_answer(change):
    assert cache_key(BASE) != cache_key(BASE | change)


def test_put_get_persist(tmp_path):
    c = LLMCache(tmp_path / "c.sqlite")
    c.put("k", BASE, {"text": "hello"})
    c.put("k", BASE, {"text": "other"})  # first answer wins
    c.close()
    c2 = LLMCache(tmp_path / "c.sqlite")
    assert c2.get("k") == {"text": "hello"}
    assert c2.get("missing") is None
    assert len(c2) == 1


def test_corrupt_cache_is_reported(tmp_path):
    p = tmp_path / "c.sqlite"
    p.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DSPError, match="corrupt.*delete it"):
        LLMCache(p)


def test_two_connections_write_one_file(tmp_path):
    p = tmp_path / "c.sqlite"
    a, b = LLMCache(p), LLMCache(p)
    for i in range(50):
        a.put(f"a{i}", BASE, {"text": str(i)})
        b.put(f"b{i}", BASE, {"text": str(i)})
    assert len(a) == len(b) == 100
    assert sqlite3.connect(p).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("kill_after", [5, 60, 300])
def test_cache_survives_kill_9_during_writes(tmp_path, kill_after):
    """A writer killed mid-transaction leaves a cache that opens clean and keeps every committed answer."""
    import os
    import signal
    import subprocess
    import sys

    p = tmp_path / "c.sqlite"
    writer = (
        "import sys\nfrom dsp.llm.cache import LLMCache\n"
        f"c = LLMCache({str(p)!r})\n"
        "for i in range(100000):\n"
        "    c.put(f'k{i}', {'prompt': 'p'}, {'text': 'x' * 20000})\n"
        "    print(i, flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    committed = -1
    for line in proc.stdout:
        committed = int(line)
        if committed >= kill_after:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    cache = LLMCache(p)  # runs PRAGMA quick_check
    assert all(cache.get(f"k{i}") == {"text": "x" * 20000} for i in range(committed + 1))
    assert len(cache) >= committed + 1


def _open_at(path: str, start: float, q) -> None:
    import time

    time.sleep(max(0.0, start - time.time()))  # every process opens the new file at the same moment
    try:
        LLMCache(path).put("k", {"model": "m"}, {"text": "t"})
        q.put("ok")
    except DSPError as e:
        q.put(str(e))


def test_processes_creating_one_new_cache_together_all_open_it(tmp_path):
    """The processes of a data-parallel job open the same new cache at once: none may call it corrupt
    (switching a new file to WAL can be refused with 'database is locked' instead of waiting)."""
    import multiprocessing as mp
    import time

    ctx = mp.get_context("spawn")
    for attempt in range(3):
        q = ctx.Queue()
        path, start = str(tmp_path / f"c{attempt}.sqlite"), time.time() + 3.0
        procs = [ctx.Process(target=_open_at, args=(path, start, q)) for _ in range(6)]
        for p in procs:
            p.start()
        results = [q.get(timeout=60) for _ in procs]
        for p in procs:
            p.join()
        assert results == ["ok"] * 6
