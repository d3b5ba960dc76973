"""A command's settings declared once: its config dataclass gives the CLI options, their help, and `--config`.

Each field of the dataclass becomes `--field-name`, its help the field's docstring (the string under
it in the class body), its default the field's default. `--config FILE` (TOML, or the `config.json` a
run folder saves) loads the same fields; a flag given on the command line wins over the file, the
file over the default. Typer stays the parser: this module only builds the signature it reads.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import textwrap
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from dsp.errors import DSPError
from dsp.settings import base_type as _base_type
from dsp.settings import check_choice, choices

_MISSING_REQUIRED = None  # a required field's CLI default: checked after --config is merged


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """{field: its docstring}, read from the class bodies of cls and its bases (nearest wins)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # no source (frozen app): help falls back to the name
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _cli_type(tp: Any) -> Any:
    """The type typer parses a field's flag as: a closed choice is text, checked with the settings (one line)."""
    base, optional = _base_type(tp)
    if choices(tp) is not None:
        base = str
    if base not in (str, int, float, bool):
        raise TypeError(f"config field type {tp!r} has no CLI form; declare that option in the command itself")
    return Optional[base] if optional else base


def _escape(text: str) -> str:
    # typer renders help with rich markup: "[models.X]" would be read as a style tag and vanish
    return text.replace("[", r"\[")


def config_options(cls: type, skip: set[str], defaults: dict[str, Any], panel: str | None) -> list[inspect.Parameter]:
    """One keyword parameter per dataclass field not in `skip`, annotated for typer."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    params = []
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.name in defaults:
            default = defaults[f.name]
        elif required:
            default = _MISSING_REQUIRED
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        tp = _cli_type(hints[f.name])
        if required or default is None:
            tp = Optional[_base_type(tp)[0]]
        help_text = docs.get(f.name, f.name.replace("_", " ")) + (
            " Required (here or in --config)." if required else ""
        )
        allowed = choices(hints[f.name])
        if allowed is not None:
            help_text += f" One of: {', '.join(map(str, allowed))}."
        option = typer.Option(
            help=_escape(help_text),
            rich_help_panel=panel,
            show_default=not required,
            metavar="|".join(map(str, allowed)) if allowed else None,
        )
        params.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[tp, option])
        )
    return params


ConfigFile = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        help="TOML file of this command's settings (or a run folder's config.json); flags given here win.",
        rich_help_panel="Settings",
    ),
]


# Settings a run folder's config.json keeps beside the config dataclass's fields (LLMOptions.run_settings),
# read back by a command that has them as options.
RUN_EXTRAS = {"base_url": Optional[str], "model": Optional[str], "llm_param": Optional[list[str]]}


def load_config_file(path: Path, cls: type, command: str, extras: dict[str, Any] | None = None) -> dict[str, Any]:
    """The file's settings, checked against cls (and `extras`, name -> type): unknown keys and wrong types are
    one-line errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DSPError(f"{path}: cannot read the --config file ({e.strerror})") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise DSPError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {e}") from None
    if not isinstance(raw, dict):
        raise DSPError(f"{path}: expected a table of settings")
    saved_by = raw.pop("command", command)
    if saved_by != command:
        raise DSPError(f"{path}: these are `dsp {saved_by}` settings, not `dsp {command}`'s")
    hints = {**typing.get_type_hints(cls), **(extras or {})}
    names = {f.name for f in dataclasses.fields(cls) if f.init} | set(extras or ())
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in names:
            raise DSPError(f"{path}: unknown setting '{key}' for `dsp {command}` (see `dsp {command} --help`)")
        out[name] = _coerce(value, hints[name], f"{path}: setting '{key}'")
    return out


def _coerce(value: Any, tp: Any, where: str) -> Any:
    base, optional = _base_type(tp)
    if value is None and optional:
        return None
    if choices(tp) is not None:
        check_choice(where, value, tp)
        return value
    if typing.get_origin(base) is tuple and isinstance(value, list):
        return tuple(value)
    if typing.get_origin(base) is list:
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise DSPError(f"{where} must be {'' if not optional else 'empty or '}a list of strings, got {value!r}")
        return value
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base in (str, int, float, bool) and not (
        isinstance(value, base) and not (base is int and isinstance(value, bool))
    ):
        raise DSPError(f"{where} must be {'' if not optional else 'empty or '}{base.__name__}, got {value!r}")
    return value


def _given(ctx: Any, name: str) -> bool:
    """Whether the user set this option (command line or environment), not left it at its default."""
    source = ctx.get_parameter_source(name) if ctx is not None else None
    return source is not None and source.name != "DEFAULT"


def _fill_from_file(
    path: Path, cls: type, command: str, given: set[str], settings: dict[str, Any], own: dict[str, Any]
) -> None:
    """The --config file's values where the command line left a setting (generated, or one of the command's `own`
    options) at its default."""
    extras = {k: t for k, t in RUN_EXTRAS.items() if k in own}
    for k, v in load_config_file(path, cls, command, extras).items():
        if k in given:
            continue
        if k in settings:
            settings[k] = v
        elif k in own:
            own[k] = v


def settings_command(
    cls: type,
    command: str,
    *,
    skip: set[str] = frozenset(),
    defaults: dict[str, Any] | None = None,
    panel: str | None = None,
) -> Callable[[Callable], Callable]:
    """Decorate a command whose first parameter is `settings: dict`: cls's fields become its options.

    The function's own parameters (task, LLM options, ...) stay as written; fields named in `skip`
    are not generated (the command declares them with another type or meaning). `settings` holds
    every generated field: default, then --config file, then flags given on the command line.
    """
    defaults = defaults or {}

    def decorate(fn: Callable) -> Callable:
        own = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]  # drop `settings`
        # typer hands its context to one parameter only: ours (`_ctx`), passed on to any the command declares
        wants_ctx = [p.name for p in own if p.annotation is typer.Context]
        own = [p for p in own if p.name not in wants_ctx]
        generated = config_options(cls, skip | {p.name for p in own}, defaults, panel)
        names = [p.name for p in generated]
        own_names = {p.name for p in own}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.name in names and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }

        @functools.wraps(fn)
        def wrapper(**kwargs):
            config_path = kwargs.pop("config", None)
            ctx = kwargs.pop("_ctx")
            kwargs.update({name: ctx for name in wants_ctx})
            settings = {n: kwargs.pop(n) for n in names}
            if config_path is not None:
                given = {n for n in [*names, *own_names] if _given(ctx, n)}
                _fill_from_file(config_path, cls, command, given, settings, kwargs)
            missing = [n for n in sorted(required) if settings.get(n) is None]
            if missing:
                flags = " and ".join(f"--{n.replace('_', '-')}" for n in missing)
                raise DSPError(f"{flags} is required (give it as a flag or in the --config file)")
            return fn(settings, **kwargs)

        params = [
            inspect.Parameter("_ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
            *own,
            *generated,
            inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigFile),
        ]
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer must read the built signature, not fn's
        return wrapper

    return decorate
