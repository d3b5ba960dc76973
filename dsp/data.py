"""Loading examples from a local file (JSONL, JSON, CSV, Parquet), a folder of splits, or a hub id.

Every problem with the data is an InputError naming the file, the line (or record) and the
field, so the CLI can print one line and exit 2; but a record with a blank text is left out with a warning
that names it (public sets hold some), an error only when no record is left.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from dsp.errors import DSPError, InputError, MissingSplit
from dsp.multiwoz import multiwoz_records

log = logging.getLogger(__name__)

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".zip")


@dataclass(frozen=True)
class Example:
    """One input with its reference output; `where` says where it came from (file:line)."""

    id: str
    input: str
    target: str
    where: str = ""
    meta: str = ""
    """The record's other fields as JSON (a task may read them: dialogue acts, slot values)."""

    def fields(self) -> dict[str, Any]:
        return json.loads(self.meta) if self.meta else {}


def resolve_source(source: str, split: str) -> Path | None:
    """A local file, or `{split}.{jsonl,json,csv,parquet}` inside a folder; None for a hub id."""
    path = Path(source).expanduser()
    if path.is_dir():
        for suffix in SUFFIXES:
            candidate = path / f"{split}{suffix}"
            if candidate.exists():
                return candidate
        raise MissingSplit(
            f"{path}: no file for split '{split}' (looked for {split}.jsonl/.json/.csv/.parquet)" + _splits_there(path)
        )
    if path.exists():
        if path.suffix not in SUFFIXES:
            raise DSPError(
                f"{path}: unknown file type '{path.suffix}' (use .jsonl, .json, .csv, .parquet, "
                "or a MultiWOZ .json.zip)"
            )
        return path
    if path.suffix in SUFFIXES or source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise DSPError(f"{path}: no such file or folder")
    return None  # looks like owner/name: a hub dataset id


def _splits_there(folder: Path) -> str:
    """What to do instead, when the folder holds other splits."""
    names = sorted({p.stem for p in folder.iterdir() if p.suffix in SUFFIXES and not p.name.startswith(".")})
    if not names:
        return ""
    listed = ", ".join(f"'{n}'" for n in names)
    return (
        f"; it holds split {listed}: name it with --split {names[0]} (dsp eval) or --train-split/--dev-split "
        "(dsp sft, rl)"
    )


def _jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(
                    path, lineno, None, f"not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})"
                )
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(path, lineno, None, f"not valid JSON ({e.msg} at column {e.colno})")


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(path, line, None, f"not UTF-8 text (byte {data[e.start]:#04x})")


def _json_records(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        obj = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise InputError(path, e.lineno, None, f"not valid JSON ({e.msg} at column {e.colno})")
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        obj = obj["data"]
    if not isinstance(obj, list):
        raise InputError(path, None, None, 'expected a JSON list of records (or {"data": [...]})')
    # Records of a JSON list have no line of their own: number them from 1 as "record N".
    yield from enumerate(obj, start=1)


def _csv_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Records numbered by their first line: a quoted field may hold line breaks, so the csv module reads
    the open file itself (newline="" keeps them as written)."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        header: list[str] | None = None
        start = 1
        try:
            for row in rows:
                if row and header is None:
                    header = row
                elif row:
                    yield start, _csv_record(path, start, header, row)
                start = rows.line_num + 1
        except UnicodeDecodeError:
            _read_text(path)  # raises, naming the line of the bad byte
            raise
        except csv.Error as e:
            raise InputError(path, start, None, f"not valid CSV ({e})") from None


def _csv_record(path: Path, line: int, header: list[str], row: list[str]) -> dict[str, str]:
    if len(row) > len(header):
        raise InputError(path, line, None, f"{len(row)} fields, but the header names {len(header)}")
    return dict(zip(header, row))


def _parquet_records(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    yield from enumerate(pq.read_table(path).to_pylist(), start=1)


def _hub_records(source: str, split: str, config_name: str | None) -> Iterator[tuple[int, Any]]:
    try:
        import datasets

        ds = datasets.load_dataset(source, config_name, split=split)
    except Exception as e:  # network, unknown id, unknown split: all the user's to fix
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DSPError(
            f"could not load '{source}' split '{split}' from the hub ({first}); offline? pass a local file"
        ) from None
    yield from enumerate(ds, start=1)


def _field_text(
    record: dict,
    name: str,
    path: Any,
    line: int,
    *,
    required: bool = True,
    allow_number: bool = False,
) -> str | None:
    """The field as text; None when a field that is not required is missing, "" when it is blank."""
    if name not in record:
        if not required:
            return None
        have = ", ".join(sorted(map(str, record))[:8])
        raise InputError(
            path, line, name, f"missing (this record has: {have}); map another field with --input-field/--target-field"
        )
    value = record[name]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "\n".join(value)
    if allow_number and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = f"{value:g}" if isinstance(value, float) else str(value)  # MultiArith's answers are numbers
    if not isinstance(value, str):
        raise InputError(path, line, name, f"expected text, got {type(value).__name__}")
    if not value.strip():
        if not required:  # a reference the command does not need (dsp hint's inputs, unlabelled extra examples)
            return ""
        raise EmptyText(path, line, name, "empty text")
    return value


class EmptyText(InputError):
    """A record whose input or reference is blank: left out with a warning (public sets hold some: XSum's train
    split on the hub has hundreds of empty documents), an error only when no record is left."""


def _meta(rest: dict[str, Any]) -> str:
    try:
        return json.dumps(rest, ensure_ascii=False, sort_keys=True) if rest else ""
    except TypeError:  # values JSON cannot hold (hub datasets' images, dates): not for tasks to read
        return json.dumps(
            {k: v for k, v in rest.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))},
            ensure_ascii=False,
            sort_keys=True,
            default=str,
        )


_PART = re.compile(r"^([^\[\],]+?)(?:\[(\d*):(\d*)\])?$")


def split_parts(split: str) -> list[tuple[str, slice]]:
    """A split as the flags take it: one name (`train`), or several joined by commas, each optionally cut to a
    range of its records with a Python slice: `train,validation[200:]` is all of train, then validation from
    its 201st record on."""
    parts = []
    for part in split.split(","):
        m = _PART.match(part.strip())
        if m is None:
            raise DSPError(
                f"split '{split}': each part is a name with an optional [start:end] of records, "
                "for example train,validation[200:]"
            )
        start, end = (int(x) if x else None for x in m.group(2, 3))
        parts.append((m.group(1).strip(), slice(start, end)))
    return parts


def load_examples(
    source: str,
    *,
    split: str = "train",
    input_field: str = "article",
    target_field: str = "highlights",
    id_field: str = "id",
    config_name: str | None = None,
    limit: int | None = None,
    need_target: bool = True,
) -> list[Example]:
    """Examples from `source`; the first `limit` of them if given. Raises InputError on bad data.

    `split` may name several splits and ranges of them (`split_parts`): their examples in that order. A record
    whose input (or needed reference) is blank is left out with one warning naming it; a range counts every
    record of its file, blank ones too, so `train[220:]` starts at the 221st whatever comes before it."""
    if limit is not None and limit <= 0:
        raise DSPError(f"--limit must be positive, not {limit}")
    parts = split_parts(split)
    whole = len(parts) == 1 and parts[0][1] == slice(None)
    items: list[Example | EmptyText] = []
    where = source
    for name, cut in parts:
        got, where = _load_split(
            source, name, input_field, target_field, id_field, config_name, need_target, limit if whole else None
        )
        items += got[cut]
    examples = [x for x in items if isinstance(x, Example)][:limit]
    blank = [x for x in items if isinstance(x, EmptyText)]
    if not examples:
        if blank:
            raise blank[0]
        raise DSPError(f"{source}: split '{split}' holds no examples")
    if blank:
        more = f" (and {len(blank) - 1} more record{'s' if len(blank) > 2 else ''})" if len(blank) > 1 else ""
        log.warning("%s%s: left out, %d examples kept", blank[0], more, len(examples))
    return examples


def _load_split(
    source: str,
    split: str,
    input_field: str,
    target_field: str,
    id_field: str,
    config_name: str | None,
    need_target: bool,
    limit: int | None,
) -> tuple[list[Example | EmptyText], str]:
    """(one split's records in order, each an Example or the EmptyText that left it out; the name its errors
    give); stops at `limit` examples."""
    path = resolve_source(source, split)
    records, where = _records(source, split, path, config_name)
    label = "record" if path is None or path.suffix in (".json", ".parquet", ".zip") else None
    items: list[Example | EmptyText] = []
    kept = 0
    for line, record in records:
        loc = f"{label} {line}" if label else line
        if not isinstance(record, dict):
            raise InputError(where, loc, None, f"expected a JSON object, got {type(record).__name__}")
        try:
            text = _field_text(record, input_field, where, loc)
            target = _field_text(record, target_field, where, loc, required=need_target, allow_number=True)
        except EmptyText as e:
            items.append(e)
            continue
        rid = record.get(id_field)
        rest = {k: v for k, v in record.items() if k not in (input_field, target_field, id_field)}
        items.append(
            Example(
                id=str(rid) if rid is not None else f"{Path(where).name}:{line}",
                input=text,
                target=target or "",
                where=f"{where}:{loc}",
                meta=_meta(rest),
            )
        )
        kept += 1
        if limit is not None and kept >= limit:
            break
    if not items:
        raise InputError(where, None, None, "no examples")
    return items, where


def scored_once(examples: list[Example], id_field: str = "id") -> list[Example]:
    """The examples with each id once, for a command whose results are keyed by id (an eval's rows, a report's
    pairs). A record that repeats an earlier one (the same id, input and reference: CNN/DailyMail's files hold
    such copies) is left out, with one warning; the same id on another record is an error naming the second,
    raised before any LLM call."""
    first: dict[str, Example] = {}  # in the order first seen: the examples kept
    dropped = []
    for e in examples:
        seen = first.setdefault(e.id, e)
        if seen is e:
            continue
        if (seen.input, seen.target, seen.meta) == (e.input, e.target, e.meta):
            dropped.append(f"{e.where} (a copy of {seen.where})")
        else:
            raise DSPError(
                f"{e.where}: field '{id_field}': '{e.id}' is also the id of {seen.where}, another record; "
                "results are keyed by id, so give each record its own"
            )
    if dropped:
        more = f" and {len(dropped) - 1} more" if len(dropped) > 1 else ""
        log.warning("%s%s: a repeated record is scored once (%d examples)", dropped[0], more, len(first))
    return list(first.values())


READERS = {".jsonl": _jsonl_records, ".json": _json_records, ".csv": _csv_records, ".parquet": _parquet_records}


def _records(source: str, split: str, path: Path | None, config_name: str | None) -> tuple[Iterator, str]:
    """(the (line, record) pairs of one split, the name its errors give): a hub dataset's when `path` is None."""
    if path is None:
        return _hub_records(source, split, config_name), f"{source}[{split}]"
    if path.suffix == ".zip":
        return multiwoz_records(path, split), str(path)
    return READERS[path.suffix](path), str(path)


@dataclass(kw_only=True)
class DataSpec:
    """Where a command's examples come from: the data source and its fields."""

    data: str
    """Local file, folder of split files (train.jsonl, dev.jsonl) or hub dataset id."""
    data_config: str | None = None
    """Hub dataset config name (e.g. 3.0.0 for abisee/cnn_dailymail)."""
    input_field: str = "article"
    """Field holding the input text."""
    target_field: str = "highlights"
    """Field holding the reference output (scores and SFT's pseudo-labels are made from it)."""

    def examples(self, split: str, **options: Any) -> list[Example]:
        """The examples of `split` (`load_examples`' `limit`, `need_target`, `id_field` pass through)."""
        return load_examples(
            self.data,
            split=split,
            input_field=self.input_field,
            target_field=self.target_field,
            config_name=self.data_config,
            **options,
        )
