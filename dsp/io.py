"""Files written so that a kill at any moment leaves the old version or the new one, never half."""

from __future__ import annotations

import json
import math
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


def json_text(obj: Any, where: str | os.PathLike, **kw) -> str:
    """`obj` as JSON, refusing NaN and infinity (not JSON: strict readers reject the file). A value that
    could not be computed is written as null, on purpose, through `finite_or_none`."""
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, **kw)
    except ValueError as e:
        raise ValueError(
            f"{where}: refusing to write NaN or infinity into JSON ({e}); pass missing values through finite_or_none"
        ) from None


def finite_or_none(obj: Any) -> Any:
    """`obj` with every NaN or infinite float (in dicts, lists and tuples) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json_text(obj, path, indent=2) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(json_text(r, path) + "\n" for r in rows))


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
            raise DSPError(
                f"{self.folder}: another dsp process{f' (pid {holder})' if holder else ''} is writing "
                "to this folder; wait for it to finish or choose another --output-dir"
            ) from None
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
