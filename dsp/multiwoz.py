"""MultiWOZ 2.1 (ConvLab format, a zip of one JSON file) read as records: one per system turn.

A data reader, not a task: `dsp.data.load_examples` opens a `.zip` with it, and the dialogue task
(`dsp.tasks.dialogue`) scores what it yields. Each record holds the dialogue so far (the last
`context_turns` utterances, one per line), the system's response, its acts as a hint
(`[hotel] [inform] area stars [request] price`) and the slot values it informs.

MultiWOZ's public validation file is the only one at hand, so `multiwoz_records` splits its
dialogues deterministically: sorted by id, the first 80% are `train`, the rest `dev`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Iterator

from dsp.errors import DSPError, InputError

TRAIN_SHARE = 0.8
NO_VALUE = {"?", "none", "", "dontcare"}


def act_hint(dialog_act: dict[str, list[list[str]]]) -> str:
    """{"Hotel-Inform": [["Area", "east"]], "Hotel-Request": [["Price", "?"]]} -> "[hotel] [inform] area [request] price"."""
    by_domain: dict[str, dict[str, list[str]]] = {}
    for name, pairs in dialog_act.items():
        domain, _, act = name.partition("-")
        acts = by_domain.setdefault(domain.lower(), {})
        slots = acts.setdefault(act.lower(), [])
        for slot, _ in pairs:
            if slot.lower() != "none" and slot.lower() not in slots:
                slots.append(slot.lower())
    parts = []
    for domain, acts in by_domain.items():
        parts.append(f"[{domain}]")
        for act, slots in acts.items():
            parts.append(" ".join([f"[{act}]", *slots]))
    return " ".join(parts)


def informed_values(dialog_act: dict[str, list[list[str]]]) -> list[str]:
    """Slot values the turn gives the user (not requests, not placeholders)."""
    out = []
    for name, pairs in dialog_act.items():
        if name.lower().endswith("-request"):
            continue
        for _, value in pairs:
            if value.strip().lower() not in NO_VALUE and value not in out:
                out.append(value)
    return out


def multiwoz_records(path: Path, split: str, context_turns: int = 4) -> Iterator[tuple[int, dict[str, Any]]]:
    """System turns of the dialogues in `split` as records: context, response, acts, values."""
    try:
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith(".json")), None)
            if name is None:
                raise InputError(path, None, None, "no .json file inside the zip")
            dialogues = json.loads(z.read(name))
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, None, None, f"not a zip of MultiWOZ JSON ({e})") from None
    if not isinstance(dialogues, dict):
        raise InputError(path, None, None, "expected a JSON object of dialogue id -> {goal, log}")
    ids = sorted(dialogues)
    cut = int(len(ids) * TRAIN_SHARE)
    if split not in ("train", "dev"):
        raise DSPError(
            f"{path}: MultiWOZ splits are train and dev (a fixed {TRAIN_SHARE:.0%} / rest split), not '{split}'"
        )
    chosen = set(ids[:cut] if split == "train" else ids[cut:])
    n = 0  # numbered over the whole file, so that "file:record n" names one turn whatever the split
    for did in ids:
        log = dialogues[did].get("log") if isinstance(dialogues[did], dict) else None
        if not isinstance(log, list):
            raise InputError(path, None, f"{did}.log", "missing or not a list")
        for i in range(1, len(log), 2):  # even turns are the user's, odd ones the system's
            n += 1
            if did not in chosen:
                continue
            turn = log[i]
            acts = turn.get("dialog_act") or {}
            history = [
                ("User" if j % 2 == 0 else "System") + ": " + log[j]["text"].strip()
                for j in range(max(0, i - context_turns), i)
            ]
            yield (
                n,
                {
                    "id": f"{did}-{i}",
                    "context": "\n".join(history),
                    "response": turn["text"].strip(),
                    "acts": act_hint(acts),
                    "values": informed_values(acts),
                },
            )
