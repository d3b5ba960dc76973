"""The Task interface and prompt templates.

A task never trains and never speaks HTTP itself: it turns an example and a hint into a prompt and
an LLM request, an example into a pseudo-label hint, and an LLM output into a score; its LLM
labelling goes through the client it is handed.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from dsp.data import Example
from dsp.errors import DSPError

if TYPE_CHECKING:
    from dsp.llm.client import AsyncLLMClient, LLMRequest

PLACEHOLDERS = ("{input}", "{hint}", "{target}")
# anything spelled like a placeholder; one not in PLACEHOLDERS would reach the LLM as text
_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


@dataclass(frozen=True)
class PromptTemplate:
    """One example block: `{input}`, optionally `{hint}`, and `{target}` last.

    A prompt is an instruction-free few-shot stack: each shot is the block filled in, the query
    is the block cut just before `{target}`, so the LLM writes the target next.
    """

    text: str
    source: str = "<string>"

    # The chat split (README, "Tasks"): for a chat endpoint a template's instruction lines, those that hold
    # no placeholder ("Q: Summarize the above article ..."), go into the system message and the rest, the
    # example proper ("Article: {input}", "Hint: {hint}", "A:"), into the user message. Completions prompts
    # are the whole template, byte for byte as before.
    @property
    def instruction(self) -> str:
        return "\n".join(ln.strip() for ln in self.text.splitlines()
                         if ln.strip() and not any(p in ln for p in PLACEHOLDERS))

    @property
    def example_part(self) -> "PromptTemplate":
        """The template without its instruction lines."""
        if not self.instruction:
            return self
        kept = [ln for ln in self.text.splitlines(keepends=True) if any(p in ln for p in PLACEHOLDERS)]
        return PromptTemplate("".join(kept), f"{self.source} (example lines)")

    def messages(self, input: str, hint: str | None) -> tuple[tuple[str, str], ...]:
        """Chat messages for one query: (system: the instruction, user: the example cut before {target})."""
        user = ("user", self.example_part.fill(input, hint, None).strip())
        return (("system", self.instruction), user) if self.instruction else (user,)

    def __post_init__(self) -> None:
        unknown = next((m for m in _PLACEHOLDER.findall(self.text) if m not in PLACEHOLDERS), None)
        if unknown is not None:
            raise DSPError(f"{self.source}: unknown placeholder {unknown} in the prompt template; "
                           f"a template fills only {', '.join(PLACEHOLDERS)}")
        for name in ("{input}", "{target}"):
            if name not in self.text:
                raise DSPError(f"{self.source}: prompt template has no {name} placeholder")
        if not self.text.rstrip().endswith("{target}") or self.text.count("{target}") != 1:
            raise DSPError(f"{self.source}: prompt template must end with {{target}}, and hold it once only")

    @property
    def answer_stops(self) -> tuple[str, ...]:
        """Where an answer to this template ends: a blank line, or the label of the input's line ("Article:")
        starting the next block, which a base model writes when it goes on with the few-shot pattern."""
        line = next(ln for ln in self.text.splitlines() if "{input}" in ln)
        label = line[: line.index("{input}")].strip()
        return ("\n\n", f"\n{label}") if label.endswith(":") else ("\n\n",)

    @property
    def uses_hint(self) -> bool:
        return "{hint}" in self.text

    @classmethod
    def load(cls, name: str) -> "PromptTemplate":
        """A packaged template (`summarization/with_hint`) or a path to a .txt file."""
        path = Path(name)
        if path.suffix == ".txt" and path.exists():
            return cls(path.read_text(encoding="utf-8"), str(path))
        try:
            text = resources.files("dsp.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DSPError(f"no prompt template '{name}' (packaged ones live in prompts/, or pass a .txt path)") from None
        return cls(text, f"prompts/{name}.txt")

    def fill(self, input: str, hint: str | None, target: str | None) -> str:
        # str.replace, not str.format: articles are full of braces.
        text = self.text.replace("{input}", input).replace("{hint}", hint or "")
        if target is None:
            return text[: text.index("{target}")].rstrip(" ")
        return text.replace("{target}", target).rstrip("\n")


KINDS: dict[str, type["Task"]] = {}
"""kind name -> its Task class; a subclass that sets `kind` registers itself (see `task_kinds`)."""


@dataclass
class Task(ABC):
    """One kind of problem as a plug-in: what the trainers, `dsp eval`, `dsp hint` and `dsp serve` read.

    A kind is one subclass in a module of `dsp.tasks` plus a prompt folder `prompts/<kind>/` (with_hint.txt,
    plain.txt): it sets the class variables below and writes `pseudo_label` and `score`; prompts, chat
    messages and the LLM request are built here, the same for every kind. A task file (`--task x.toml`)
    names its kind and overrides the fields.
    """

    kind: ClassVar[str]
    """The name a task file's `kind` key uses."""
    labeller: ClassVar[str]
    """The pseudo-labeller's name (a task file's `hint.labeller` must say this one)."""
    metrics: ClassVar[tuple[str, ...]]
    """Scores `score` returns; the first is the default reward."""
    extractive_hints: ClassVar[bool] = False
    """A hint is words of the input, so an extractive policy can write it."""

    name: str = "task"
    separator: str = "; "
    """Joins hint phrases (the extractive policy and the hint-hit shaping split on it)."""
    max_input_words: int = 400
    """Input words kept in an LLM prompt (the rest is cut: small LLMs have short contexts)."""
    shot_input_words: int = 200
    """Input words kept in each few-shot example."""
    shots: int = 1
    """Few-shot examples per LLM prompt when the command line does not say (--shots)."""
    max_tokens: int = 96
    """Most tokens the LLM may write for one answer."""
    stop: tuple[str, ...] = ("\n\n",)
    """Where the LLM's answer ends."""
    stop_repeats: bool = False
    """End each answer before the first sentence it repeats (streamed, so the rest is never generated)."""
    sampling: dict[str, Any] = field(default_factory=dict)
    """Further sampling fields sent as they are in each request's body (a task file's other [generation] keys:
    `repeat_penalty`, `top_k`, `dry_multiplier`, ...); which a server takes is its own affair (README)."""
    metric: str = ""
    """The key of `score`'s result that is the reward (default: the kind's first metric)."""
    with_hint: PromptTemplate | None = None
    """The hinted prompt block (default: prompts/<kind>/with_hint.txt)."""
    plain: PromptTemplate | None = None
    """The no-hint prompt block (default: prompts/<kind>/plain.txt)."""
    _shot_blocks: dict[tuple[Example, bool], str] = field(default_factory=dict, repr=False, compare=False)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            KINDS[cls.kind] = cls

    def __post_init__(self) -> None:
        self.metric = self.metric or self.metrics[0]
        if self.with_hint is None:
            self.with_hint = PromptTemplate.load(f"{self.kind}/with_hint")
        if self.plain is None:
            self.plain = PromptTemplate.load(f"{self.kind}/plain")

    @abstractmethod
    def pseudo_label(self, example: Example) -> str:
        """The hint SFT learns for this example, without calling the LLM."""

    @abstractmethod
    def score(self, output: str, example: Example) -> dict[str, float]:
        """The LLM's answer scored against the example's reference: every name of `metrics`."""

    async def llm_labels(self, examples: Sequence[Example], client: AsyncLLMClient,
                         template: str) -> dict[str, str]:
        """{example.where: hint} written with the LLM's help (`dsp sft --labels llm`): by default the key phrases
        the LLM lists for the input in a labelling prompt (`template`) that occur in it."""
        from dsp.tasks.labelling import llm_labels

        return await llm_labels(examples, client, separator=self.separator, template=template)

    def prompt_input(self, example: Example, words: int | None = None) -> str:
        """The input as a prompt holds it: its first `words` words (default `max_input_words`), single-spaced."""
        return " ".join(example.input.split()[: self.max_input_words if words is None else words])

    def _block(self, template: PromptTemplate, example: Example, hint: str | None, words: int, target: str | None) -> str:
        return template.fill(self.prompt_input(example, words), hint, target)

    def _shot_block(self, shot: Example, hinted: bool) -> str:
        """A filled few-shot block; the same shots open every prompt, so each is built once."""
        key = (shot, hinted)
        if key not in self._shot_blocks:
            template = self.with_hint if hinted else self.plain
            self._shot_blocks[key] = self._block(template, shot, self.pseudo_label(shot) if hinted else None,
                                                 self.shot_input_words, " ".join(shot.target.split()))
        return self._shot_blocks[key]

    def prompt(self, example: Example, hint: str | None, shots: Sequence[Example] = ()) -> str:
        """Few-shot prompt; `hint=None` gives the plain prompt (no hint line at all)."""
        template = self.plain if hint is None else self.with_hint
        blocks = [self._shot_block(s, hint is not None) for s in shots]
        blocks.append(self._block(template, example, hint, self.max_input_words, None))
        return "\n\n".join(blocks)

    def messages(self, example: Example, hint: str | None, shots: Sequence[Example] = ()) -> tuple[tuple[str, str], ...]:
        """The same prompt for a chat endpoint: the template's instruction as the system message, each shot
        as a user turn (its example lines) and an assistant turn (its target), the input as the last user
        turn (see PromptTemplate.instruction)."""
        template = self.plain if hint is None else self.with_hint
        part = template.example_part
        out: list[tuple[str, str]] = [("system", template.instruction)] if template.instruction else []
        for s in shots:
            out.append(("user", self._block(part, s, self.pseudo_label(s) if hint is not None else None,
                                            self.shot_input_words, None).strip()))
            out.append(("assistant", " ".join(s.target.split())))
        out.append(("user", self._block(part, example, hint, self.max_input_words, None).strip()))
        return tuple(out)

    def request(self, example: Example, hint: str | None, shots: Sequence[Example] = (), *, temperature: float = 0.0,
                sample_index: int = 0) -> LLMRequest:
        """The one LLM call for (input, hint): the completions prompt and the chat messages (the client sends
        the one its endpoint takes; the cache key is the prompt's), with this task's length and stop strings.
        Every command builds its requests here."""
        from dsp.llm.client import LLMRequest  # the openai SDK loads with the first request, not with the task

        return LLMRequest(prompt=self.prompt(example, hint, shots), messages=self.messages(example, hint, shots),
                          max_tokens=self.max_tokens, stop=self.stop, temperature=temperature, sample_index=sample_index,
                          extra=tuple(sorted(self.sampling.items())), stop_repeats=self.stop_repeats)


def task_kinds() -> dict[str, type[Task]]:
    """Every task kind: each module of `dsp.tasks` is imported, and its Task subclasses register themselves,
    so a new kind needs no table edited anywhere."""
    import dsp.tasks

    for module in pkgutil.iter_modules(dsp.tasks.__path__):
        importlib.import_module(f"dsp.tasks.{module.name}")
    return dict(KINDS)
