"""What a saved policy folder must hold, checked before any model library reads it: a damaged or half-written
folder is one line naming the folder and the file that is missing or damaged (exit 2), not a loader's
traceback. Cheap: small JSON files and the safetensors headers only.
"""

from __future__ import annotations

import json
from pathlib import Path

from dsp.errors import DSPError

MARKER = "dsp_policy.json"  # written beside the weights: which class loads this folder
RUN_COMMANDS = ("sft", "rl", "distill")
# the files each kind's save writes (model weights: model.safetensors, or its shards' index)
NEEDS = {
    "extractive": ("config.json", "tokenizer.json", "head.safetensors"),
    "seq2seq": ("config.json",),
    "tfidf": ("tfidf.json",),
}
AGAIN = "the folder is damaged or half-written: save or train the policy again"


def policy_folder(path: Path) -> Path:
    """The folder to load for `path` (a run folder's policy/), after checking what it holds."""
    command = _run_command(path)
    if not (path / MARKER).exists() and (path / "policy" / MARKER).exists():
        path = path / "policy"
    elif command is not None and not (path / MARKER).exists():
        path = _finished_policy(path, command)
    if not (path / MARKER).exists():
        _check_plain_model(path)
        return path
    kind = read_marker(path).get("kind")
    for name in NEEDS.get(kind, ()):
        if not (path / name).exists():
            raise DSPError(f"{path}: {name} is missing; {AGAIN}")
    if kind in ("extractive", "seq2seq"):
        for weights in _weight_files(path):
            check_safetensors(weights)
    if (path / "head.safetensors").exists():
        check_safetensors(path / "head.safetensors")
    return path


def read_marker(path: Path) -> dict:
    try:
        meta = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DSPError(f"{path}: {MARKER} is damaged (not valid JSON: {e}); {AGAIN}") from None
    if not isinstance(meta, dict):
        raise DSPError(f"{path}: {MARKER} is damaged (not a JSON object); {AGAIN}")
    return meta


def _run_command(path: Path) -> str | None:
    """The dsp command whose run folder `path` is (its config.json says), else None."""
    try:
        saved = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    command = saved.get("command") if isinstance(saved, dict) else None
    return command if command in RUN_COMMANDS else None


def _finished_policy(run: Path, command: str) -> Path:
    if (run / "policy").is_dir():
        return run / "policy"
    checkpoint = next(
        (run / c / "policy" for c in ("checkpoint", "checkpoint.old") if (run / c / "policy").is_dir()), None
    )
    use = f", or use its checkpoint: --policy {checkpoint}" if checkpoint else ""
    raise DSPError(f"{run}: no policy/: training did not finish: resume it with `dsp {command} --resume`{use}")


def _check_plain_model(path: Path) -> None:
    """A folder without the marker loads as a Hugging Face seq2seq model: its config.json must say it is one."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except OSError:
        raise DSPError(
            f"{path}: not a policy folder (no {MARKER} or config.json); pass a `dsp sft` run folder"
        ) from None
    except ValueError as e:
        raise DSPError(f"{path}: config.json is damaged (not valid JSON: {e})") from None
    if not (isinstance(config, dict) and config.get("is_encoder_decoder")):
        kind = config.get("model_type", "?") if isinstance(config, dict) else "?"
        raise DSPError(
            f"{path}: no {MARKER} (which says how to load a dsp policy), and config.json is not a seq2seq "
            f"model ('{kind}'); {AGAIN}"
        )


def _weight_files(path: Path) -> list[Path]:
    if (path / "model.safetensors").exists():
        return [path / "model.safetensors"]
    index = path / "model.safetensors.index.json"
    if not index.exists():
        raise DSPError(f"{path}: model.safetensors is missing; {AGAIN}")
    try:
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DSPError(f"{path}: {index.name} is damaged; {AGAIN}") from None
    missing = [s for s in shards if not (path / s).exists()]
    if missing:
        raise DSPError(f"{path}: {missing[0]} is missing; {AGAIN}")
    return [path / s for s in shards]


def check_safetensors(file: Path) -> None:
    """Reads the header: a file cut short (a kill mid-write, a full disk) does not cover what it declares."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), "pt"):
            pass
    except SafetensorError as e:
        raise DSPError(f"{file.parent}: {file.name} is damaged ({e}); {AGAIN}") from None
