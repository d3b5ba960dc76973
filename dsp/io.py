"""Files written so that a kill at any moment leaves the old version or the new one, never half."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


LOCK_NAME = ".dsp.lock"


class RunLock:
    """One writer per run folder: a second process that would overwrite it gets a clear error.

    An advisory `flock` on `.dsp.lock` inside the folder; the OS drops it when the process ends,
    also on kill -9, so a crashed run never leaves a stale lock behind.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._file = None

    def __enter__(self) -> "RunLock":
        import fcntl

        from dsp.errors import DSPError

        self.folder.mkdir(parents=True, exist_ok=True)
        f = open(self.folder / LOCK_NAME, "a+", encoding="utf-8")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            raise DSPError(f"{self.folder}: another dsp process{f' (pid {holder})' if holder else ''} is writing "
                           "to this folder; wait for it to finish or choose another --output-dir") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the flock
            self._file = None


def is_empty_run_folder(folder: Path) -> bool:
    return not any(p.name != LOCK_NAME for p in Path(folder).iterdir())
