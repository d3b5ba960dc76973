"""The Task interface: what one kind of problem gives the commands.

A task never trains and never speaks HTTP itself: it turns an example and a hint into a prompt and
an LLM request, an example into a pseudo-label hint, and an LLM output into a score; its LLM
labelling goes through the client it is handed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from dsp.data import Example
from dsp.llm.types import LLMRequest
from dsp.tasks.template import PromptTemplate

if TYPE_CHECKING:
    from dsp.llm.client import AsyncLLMClient

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

    async def llm_labels(self, examples: Sequence[Example], client: AsyncLLMClient, template: str) -> dict[str, str]:
        """{example.where: hint} written with the LLM's help (`dsp sft --labels llm`): by default the key phrases
        the LLM lists for the input in a labelling prompt (`template`) that occur in it."""
        from dsp.tasks.labelling import llm_labels

        return await llm_labels(examples, client, separator=self.separator, template=template)

    def prompt_input(self, example: Example, words: int | None = None) -> str:
        """The input as a prompt holds it: its first `words` words (default `max_input_words`), single-spaced."""
        return " ".join(example.input.split()[: self.max_input_words if words is None else words])

    def _block(
        self, template: PromptTemplate, example: Example, hint: str | None, words: int, target: str | None
    ) -> str:
        return template.fill(self.prompt_input(example, words), hint, target)

    def _shot_block(self, shot: Example, hinted: bool) -> str:
        """A filled few-shot block; the same shots open every prompt, so each is built once."""
        key = (shot, hinted)
        if key not in self._shot_blocks:
            template = self.with_hint if hinted else self.plain
            self._shot_blocks[key] = self._block(
                template,
                shot,
                self.pseudo_label(shot) if hinted else None,
                self.shot_input_words,
                " ".join(shot.target.split()),
            )
        return self._shot_blocks[key]

    def prompt(self, example: Example, hint: str | None, shots: Sequence[Example] = ()) -> str:
        """Few-shot prompt; `hint=None` gives the plain prompt (no hint line at all)."""
        template = self.plain if hint is None else self.with_hint
        blocks = [self._shot_block(s, hint is not None) for s in shots]
        blocks.append(self._block(template, example, hint, self.max_input_words, None))
        return "\n\n".join(blocks)

    def messages(
        self, example: Example, hint: str | None, shots: Sequence[Example] = ()
    ) -> tuple[tuple[str, str], ...]:
        """The same prompt for a chat endpoint: the template's instruction as the system message, each shot
        as a user turn (its example lines) and an assistant turn (its target), the input as the last user
        turn (see PromptTemplate.instruction)."""
        template = self.plain if hint is None else self.with_hint
        part = template.example_part
        out: list[tuple[str, str]] = [("system", template.instruction)] if template.instruction else []
        for s in shots:
            out.append(
                (
                    "user",
                    self._block(
                        part, s, self.pseudo_label(s) if hint is not None else None, self.shot_input_words, None
                    ).strip(),
                )
            )
            out.append(("assistant", " ".join(s.target.split())))
        out.append(("user", self._block(part, example, hint, self.max_input_words, None).strip()))
        return tuple(out)

    def request(
        self,
        example: Example,
        hint: str | None,
        shots: Sequence[Example] = (),
        *,
        temperature: float = 0.0,
        sample_index: int = 0,
    ) -> LLMRequest:
        """The one LLM call for (input, hint): the completions prompt and the chat messages (the client sends
        the one its endpoint takes; the cache key is the prompt's), with this task's length and stop strings.
        Every command builds its requests here."""
        return LLMRequest(
            prompt=self.prompt(example, hint, shots),
            messages=self.messages(example, hint, shots),
            max_tokens=self.max_tokens,
            stop=self.stop,
            temperature=temperature,
            sample_index=sample_index,
            extra=tuple(sorted(self.sampling.items())),
            stop_repeats=self.stop_repeats,
        )
