"""A task as data: a TOML file names the dataset, the prompt templates, the hint pseudo-labeller,
the reward metric and the generation settings. `--task NAME` picks a built-in one
(`data/tasks/NAME.toml`, installed as package data); `--task path/to/task.toml` a user's.

TOML rather than YAML: Python reads it with the standard library, so a task needs no parser
dependency, and its types (strings, numbers, arrays) are all a task config uses.

    name = "my-task"
    kind = "summarization"      # summarization (default), dialogue or reasoning
    description = "free text, for the reader"
    [data]                      # defaults for --data / --input-field / --target-field
    source = "path/or/hub-id"
    config = "3.0.0"            # a hub dataset's config name
    input_field = "text"
    target_field = "summary"
    id_field = "doc_id"         # each record's id in eval rows and batch hints (default "id", else file:line)
    [prompt]                    # packaged template names, .txt paths (relative to this file) ...
    with_hint = "summarization/with_hint"
    plain = "summarization/plain"
    # ... or the template text itself (placeholders: {input}, {hint}, {target} last; no others):
    with_hint_text = "Text: {input}\\nHint: {hint}\\nSummary: {target}"
    plain_text = "Text: {input}\\nSummary: {target}"
    max_input_words = 400
    shot_input_words = 200      # words of each few-shot example's input
    shots = 1                   # few-shot examples per prompt unless --shots says otherwise
    [hint]
    labeller = "reference_phrases"
    separator = "; "
    max_phrase_words = 4        # reference_phrases: longest phrase a pseudo-label keeps
    [generation]
    max_tokens = 96
    stop = ["\\n\\n"]
    stop_repeats = true         # end an answer before the first sentence it repeats (streamed)
    repeat_penalty = 1.1        # any other key is a sampling field sent as it is in the request body
    [reward]
    metric = "rouge_avg"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from dsp.errors import DSPError
from dsp.llm.sampling import check_sampling_fields
from dsp.tasks import task_kinds
from dsp.tasks.base import Task
from dsp.tasks.template import PromptTemplate

DEFAULT_TASK = "cnndm"

# key -> (type, required); sections are checked key by key so a typo is named
SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "": {"name": (str, True), "kind": (str, False), "description": (str, False)},
    "data": {
        "source": (str, False),
        "config": (str, False),
        "input_field": (str, False),
        "target_field": (str, False),
        "id_field": (str, False),
    },
    "prompt": {
        "with_hint": (str, False),
        "plain": (str, False),
        "with_hint_text": (str, False),
        "plain_text": (str, False),
        "max_input_words": (int, False),
        "shot_input_words": (int, False),
        "shots": (int, False),
    },
    "hint": {"labeller": (str, False), "separator": (str, False), "max_phrase_words": (int, False)},
    "generation": {"max_tokens": (int, False), "stop": (list, False), "stop_repeats": (bool, False)},
    "reward": {"metric": (str, False)},
}
MAY_BE_ZERO = {"shots"}  # the one count where none is a choice (a zero-shot prompt)
# (section, key) of a task file that sets the Task field of the same name
FIELDS = (
    ("hint", "separator"),
    ("prompt", "max_input_words"),
    ("prompt", "shot_input_words"),
    ("prompt", "shots"),
    ("hint", "max_phrase_words"),
    ("generation", "max_tokens"),
    ("generation", "stop_repeats"),
)


@dataclass
class DataDefaults:
    """What the task says about its data; command-line flags override each."""

    source: str | None = None
    config: str | None = None
    input_field: str = "article"
    target_field: str = "highlights"
    id_field: str | None = None


@dataclass
class LoadedTask:
    task: Task
    data: DataDefaults = field(default_factory=DataDefaults)
    source: str = ""


def builtin_tasks() -> list[str]:
    folder = resources.files("dsp.task_configs")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _read(name_or_path: str) -> tuple[dict[str, Any], str, Path | None]:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DSPError(f"{path}: no such task file") from None
        except UnicodeDecodeError:
            raise DSPError(f"{path}: not UTF-8 text") from None
        where, base = str(path), path.parent
    else:
        try:
            text = resources.files("dsp.task_configs").joinpath(f"{name_or_path}.toml").read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DSPError(
                f"no task '{name_or_path}': built-in tasks are {', '.join(builtin_tasks())}, "
                "or pass a path to a .toml task file"
            ) from None
        where, base = f"data/tasks/{name_or_path}.toml", None
    try:
        return tomllib.loads(text), where, base
    except tomllib.TOMLDecodeError as e:
        raise DSPError(f"{where}: not valid TOML ({e})") from None


def _check(raw: dict[str, Any], where: str) -> None:
    for key, value in raw.items():
        if isinstance(value, dict):
            if key not in SCHEMA or key == "":
                raise DSPError(f"{where}: unknown section [{key}]; sections are {', '.join(k for k in SCHEMA if k)}")
            # [generation] also takes sampling fields of the server's own (load_task checks them)
            known = {k: v for k, v in value.items() if k in SCHEMA[key]} if key == "generation" else value
            _check_keys(known, SCHEMA[key], where, f"{key}.")
        elif key not in SCHEMA[""]:
            raise DSPError(f"{where}: unknown key '{key}' (a top-level key must be one of {', '.join(SCHEMA[''])})")
    _check_keys({k: v for k, v in raw.items() if not isinstance(v, dict)}, SCHEMA[""], where, "")


def _check_keys(values: dict[str, Any], schema: dict[str, tuple[Any, bool]], where: str, prefix: str) -> None:
    for key, value in values.items():
        if key not in schema:
            raise DSPError(f"{where}: unknown key '{prefix}{key}'; known: {', '.join(prefix + k for k in schema)}")
        kind = schema[key][0]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise DSPError(
                f"{where}: key '{prefix}{key}' must be {getattr(kind, '__name__', kind)}, not {type(value).__name__}"
            )
        if kind is int and value < (0 if key in MAY_BE_ZERO else 1):
            kind_word = "0 or more" if key in MAY_BE_ZERO else "positive"
            raise DSPError(f"{where}: key '{prefix}{key}' must be {kind_word}, not {value}")
    for key, (_, required) in schema.items():
        if required and key not in values:
            raise DSPError(f"{where}: missing key '{prefix}{key}'")


def _template(section: dict[str, Any], which: str, where: str, base: Path | None, default: str) -> PromptTemplate:
    if f"{which}_text" in section:
        return PromptTemplate(section[f"{which}_text"], f"{where} [prompt].{which}_text")
    name = section.get(which, default)
    if base is not None and name.endswith(".txt"):
        name = str((base / name).resolve())
    return PromptTemplate.load(name)


def load_task(name_or_path: str | None = None) -> LoadedTask:  # noqa: C901 (a flat list of checks)
    """A built-in task by name or a user's TOML task file; errors name the file and the key."""
    raw, where, base = _read(name_or_path or DEFAULT_TASK)
    _check(raw, where)
    prompt, hint, gen, reward = (raw.get(k, {}) for k in ("prompt", "hint", "generation", "reward"))
    kinds = task_kinds()
    kind = raw.get("kind", "summarization")
    if kind not in kinds:
        raise DSPError(f"{where}: key 'kind' must be one of {', '.join(sorted(kinds))}, not '{kind}'")
    cls = kinds[kind]
    if hint.get("labeller", cls.labeller) != cls.labeller:
        raise DSPError(
            f"{where}: key 'hint.labeller' must be '{cls.labeller}' for a {kind} task, not '{hint['labeller']}'"
        )
    if reward.get("metric", cls.metrics[0]) not in cls.metrics:
        raise DSPError(
            f"{where}: key 'reward.metric' must be one of {', '.join(cls.metrics)} for a {kind} task, "
            f"not '{reward['metric']}'"
        )
    sampling = check_sampling_fields(
        {k: v for k, v in gen.items() if k not in SCHEMA["generation"]}, where + " [generation]"
    )
    stop = gen.get("stop", ["\n\n"])
    if not all(isinstance(s, str) and s for s in stop):
        raise DSPError(f"{where}: key 'generation.stop' must be a list of non-empty strings")
    settings = {
        "name": raw["name"],
        "stop": tuple(stop),
        "metric": reward.get("metric", cls.metrics[0]),
        "sampling": sampling,
    }
    own = {f.name for f in fields(cls)}
    for section, key in FIELDS:
        if key in raw.get(section, {}):
            if key not in own:  # e.g. max_phrase_words: only the reference-phrase labeller reads it
                raise DSPError(f"{where}: key '{section}.{key}' is not used by a {kind} task; remove it")
            settings[key] = raw[section][key]
    task = cls(
        **settings,
        with_hint=_template(prompt, "with_hint", where, base, f"{kind}/with_hint"),
        plain=_template(prompt, "plain", where, base, f"{kind}/plain"),
    )
    if not task.with_hint.uses_hint:
        raise DSPError(f"{where}: the with_hint template has no {{hint}} placeholder")
    data = DataDefaults(**raw.get("data", {}))
    return LoadedTask(task, data, where)
