"""The Task interface and prompt templates.

A task never calls HTTP and never trains: it turns an example and a hint into a prompt, an
example into a pseudo-label hint, and an LLM output into a score.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from dsp.data import Example
from dsp.errors import DSPError

if TYPE_CHECKING:
    from dsp.llm.client import LLMRequest

PLACEHOLDERS = ("{input}", "{hint}", "{target}")


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


class Task(Protocol):
    """What the trainers, `dsp eval`, `dsp hint` and `dsp serve` read of a task."""

    name: str
    separator: str
    """Joins hint phrases (the extractive policy and the hint-hit shaping split on it)."""
    extractive_hints: bool
    """A hint is words of the input, so an extractive policy can write it."""
    shots: int
    """Few-shot examples per prompt when the command line does not say."""
    max_tokens: int
    """Most tokens the LLM may write for one answer."""
    stop: tuple[str, ...]
    """Where the LLM's answer ends."""
    metric: str
    """The key of `score`'s result that is the reward."""

    def pseudo_label(self, example: Example) -> str: ...

    def prompt(self, example: Example, hint: str | None, shots: Sequence[Example] = ()) -> str: ...

    def messages(self, example: Example, hint: str | None, shots: Sequence[Example] = ()) -> tuple[tuple[str, str], ...]: ...

    def request(self, example: Example, hint: str | None, shots: Sequence[Example] = (), *, temperature: float = 0.0,
                sample_index: int = 0) -> LLMRequest:
        """The LLM call for (input, hint): every command builds its requests here."""
        ...

    def score(self, output: str, example: Example) -> dict[str, float]: ...
