"""Options every LLM-calling command shares, and the one way errors leave the CLI."""

from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional, Sequence

import typer

from dsp.errors import DSPError
from dsp.llm.sampling import parse_llm_params
from dsp.llm.session import load_prices
from dsp.llm.types import LLMConfig

if TYPE_CHECKING:
    from dsp.tasks.base import Task

BaseUrl = Annotated[
    Optional[str],
    typer.Option(
        help="OpenAI-compatible base URL (env OPENAI_BASE_URL). Unset with no --model: the embedded Gemma 3 270M.",
        rich_help_panel="LLM",
    ),
]
Model = Annotated[Optional[str], typer.Option(help="Model name (env OPENAI_MODEL).", rich_help_panel="LLM")]
ApiKey = Annotated[
    Optional[str],
    typer.Option(
        help="API key; prefer env OPENAI_API_KEY. Never stored or logged.", rich_help_panel="LLM", show_default=False
    ),
]
Endpoint = Annotated[
    str,
    typer.Option(
        help="'completions' for base models (the whole template as one prompt), 'chat' for chat models (the template's instruction lines as the system message, the example as the user message).",
        rich_help_panel="LLM",
    ),
]
TokenLimitField = Annotated[
    str,
    typer.Option(
        help="Request field for the output token limit: max_tokens, or max_completion_tokens (OpenAI's reasoning models). A 400 refusing max_tokens switches to the other once by itself.",
        rich_help_panel="LLM",
    ),
]
Concurrency = Annotated[
    int, typer.Option(help="Most LLM calls in flight (the embedded LLM uses at most 2).", rich_help_panel="LLM")
]
MaxCalls = Annotated[
    Optional[int],
    typer.Option(
        "--max-llm-calls",
        help="Hard cap on HTTP requests to the LLM this run (cache hits are free). dsp sft/rl under accelerate launch or torchrun: it caps the whole job, each of N processes gets cap // N, the lowest ranks one more for the remainder, and the first to spend its share stops all.",
        rich_help_panel="LLM",
    ),
]
MaxCost = Annotated[
    Optional[float],
    typer.Option(
        help="Cap in USD, needs --prices. An estimate-bounded cap: each call reserves its worst case (a token per prompt byte, all of max_tokens out) before it is sent, so spend stays under it unless the server bills more tokens than that. dsp sft/rl under accelerate launch or torchrun: it caps the whole job, each of N processes gets cap / N.",
        rich_help_panel="LLM",
    ),
]
# "\\[": typer renders help through rich markup, which takes [models."NAME"] for a style tag and drops it.
Prices = Annotated[
    Optional[Path],
    typer.Option(help='TOML prices file: \\[models."NAME"] input = USD/1M tokens, output = ...', rich_help_panel="LLM"),
]
Timeout = Annotated[
    float,
    typer.Option("--llm-timeout", help="Seconds before one LLM call is abandoned and retried.", rich_help_panel="LLM"),
]
Retries = Annotated[
    int,
    typer.Option(
        "--max-retries",
        help="Retries per LLM call on 429, 5xx, timeouts, dropped connections, malformed answers.",
        rich_help_panel="LLM",
    ),
]
Cache = Annotated[
    Optional[Path],
    typer.Option(help="LLM answer cache (SQLite). Default ~/.cache/dsp/llm-cache.sqlite.", rich_help_panel="LLM"),
]
LLMParam = Annotated[
    Optional[list[str]],
    typer.Option(
        "--llm-param",
        metavar="KEY=VALUE",
        help="A sampling field sent as it is in every request body, over the task's \\[generation] (repeatable; VALUE is JSON, else text): --llm-param repeat_penalty=1.1 --llm-param top_k=40. Part of the cache key. Which fields a server takes: README, 'The LLM client'.",
        rich_help_panel="LLM",
        show_default=False,
    ),
]
CacheNamespace = Annotated[
    Optional[str],
    typer.Option(
        help="Cache answers under this name instead of the server's URL (the default), to share them across URLs that serve the same weights. The embedded LLM keeps its own.",
        rich_help_panel="LLM",
    ),
]


TaskName = Annotated[
    str,
    typer.Option(
        "--task",
        help="Built-in task (cnndm, xsum, multiwoz, multiarith, gsm8k) or a path to a task .toml file; it gives --data and field defaults.",
    ),
]
DataSource = Annotated[
    Optional[str],
    typer.Option(
        help="Local file, folder of split files (train.jsonl, dev.jsonl), or hub dataset id. Default: the task's source."
    ),
]
InputField = Annotated[Optional[str], typer.Option(help="Input text field (default: the task's).")]
TargetField = Annotated[Optional[str], typer.Option(help="Reference field (default: the task's).")]


Device = Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...; auto takes a GPU when there is one.")]
Seed = Annotated[int, typer.Option(help="Random seed.")]
Resume = Annotated[bool, typer.Option(help="Continue the run folder's checkpoint.")]


def resolve_task(
    task: str, data: str | None, input_field: str | None, target_field: str | None, settings: dict[str, Any]
) -> tuple[Task, dict[str, Any], str]:
    """(the task, a config's data settings: data, data_config, input_field and target_field, the task's id field):
    the flags win over the task file's defaults. The data_config setting is taken out of `settings`."""
    from dsp.tasks.config import load_task

    loaded = load_task(task)
    d = loaded.data
    data_config = settings.pop("data_config")
    if data is None and d.source is None:
        raise DSPError(f"--data is required: task '{loaded.task.name}' names no data source")
    if data is None:
        data_config = data_config or d.config
    spec = {
        "data": data or d.source,
        "data_config": data_config,
        "input_field": input_field or d.input_field,
        "target_field": target_field or d.target_field,
    }
    return loaded.task, spec, d.id_field or "id"


@dataclass(frozen=True)
class LLMOptions:
    """The LLM options as the user gave them; `config()` checks them and reads the prices file."""

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never printed
    endpoint: str = "completions"
    token_limit_field: str = "max_tokens"
    concurrency: int = 8
    max_llm_calls: int | None = None
    max_cost: float | None = None
    prices: Path | None = None
    cache: Path | None = None
    cache_namespace: str | None = None
    llm_timeout: float = 120.0
    max_retries: int = 6
    llm_param: list[str] | None = None

    def run_settings(self) -> dict[str, Any]:
        """What a run folder's config.json keeps of the LLM, so `--config` repeats the run on it: its base URL
        (no credentials), model (as given or from OPENAI_BASE_URL/OPENAI_MODEL) and --llm-param fields, which
        change the answers as much as the model does; never the key."""
        from dsp.llm.types import public_url

        resolved = LLMConfig(model=self.model, base_url=self.base_url)
        return {
            "base_url": public_url(resolved.base_url) if resolved.base_url else None,
            "model": resolved.model,
            "llm_param": list(self.llm_param) if self.llm_param else None,
        }

    def config(self) -> LLMConfig:
        price_in = price_out = None
        if self.prices is not None:
            price_in, price_out = load_prices(self.prices, self.model)
        return LLMConfig(
            model=self.model,
            base_url=self.base_url,
            api_key=self.api_key,
            endpoint=self.endpoint,
            concurrency=self.concurrency,
            max_llm_calls=self.max_llm_calls,
            max_cost=self.max_cost,
            price_in=price_in,
            price_out=price_out,
            timeout=self.llm_timeout,
            max_retries=self.max_retries,
            cache_namespace=self.cache_namespace,
            token_limit_field=self.token_limit_field,
            extra_params=parse_llm_params(self.llm_param or []),
        )


# field of LLMOptions -> its typer option; the default is the field's
LLM_OPTIONS: dict[str, Any] = {
    "base_url": BaseUrl,
    "model": Model,
    "api_key": ApiKey,
    "endpoint": Endpoint,
    "token_limit_field": TokenLimitField,
    "concurrency": Concurrency,
    "max_llm_calls": MaxCalls,
    "max_cost": MaxCost,
    "prices": Prices,
    "cache": Cache,
    "cache_namespace": CacheNamespace,
    "llm_timeout": Timeout,
    "max_retries": Retries,
    "llm_param": LLMParam,
}


def llm_options(fn: Callable) -> Callable:
    """Give a command the LLM options (the fields of `LLMOptions`, each one's flag in `LLM_OPTIONS`): they are
    appended to its flags, and the command receives them as one `llm: LLMOptions` argument."""
    own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "llm"]
    added = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=LLM_OPTIONS[f.name])
        for f in fields(LLMOptions)
    ]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        llm = LLMOptions(**{f.name: kwargs.pop(f.name) for f in fields(LLMOptions)})
        return fn(*args, llm=llm, **kwargs)

    params = own + added
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # typer must read the built signature, not fn's
    return wrapper


def command_line(ctx: typer.Context) -> str:
    """The running command as a line to type again, rebuilt from the options given on the command line: the API
    key shown as ***, a URL's user and password dropped, so a run folder can record it without a secret."""
    import shlex
    from urllib.parse import urlsplit, urlunsplit

    parts = ["dsp", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params.get(param.name)
        if param.param_type_name == "argument":
            parts += [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
            continue
        if getattr(param, "is_flag", False) and isinstance(value, bool):
            parts += (param.opts if value else param.secondary_opts)[:1]
            continue
        if param.name == "api_key":
            value = "***"
        elif isinstance(value, str) and "@" in value and "://" in value:
            u = urlsplit(value)
            value = urlunsplit(u._replace(netloc=(u.hostname or "") + (f":{u.port}" if u.port else "")))
        parts += [max(param.opts, key=len), str(value)]
    return shlex.join(parts)


def handle_errors(fn: Callable) -> Callable:
    """User errors become one line on stderr and their exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:
            return fn(*args, **kwargs)
        except DSPError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; finished work is saved (checkpoints, LLM cache)", err=True)
            raise typer.Exit(130) from None

    return wrapper


def load_shots(loaded, shots_data: str | None, shots: int | None, hinted: Sequence = ()) -> list:
    """The few-shot examples of `dsp hint --run` and `dsp serve`: the first of --shots-data's train split that
    are none of the `hinted` examples (an input never sees its own answer)."""
    from dsp.shots import draw_shots

    shots = loaded.task.shots if shots is None else shots
    return draw_shots(
        shots_data,
        shots,
        hinted,
        split="train",
        input_field=loaded.data.input_field,
        target_field=loaded.data.target_field,
    )
