"""Prompt templates: one example block with `{input}`, optionally `{hint}`, and `{target}` last."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dsp.errors import DSPError

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
        return "\n".join(
            ln.strip() for ln in self.text.splitlines() if ln.strip() and not any(p in ln for p in PLACEHOLDERS)
        )

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
            raise DSPError(
                f"{self.source}: unknown placeholder {unknown} in the prompt template; "
                f"a template fills only {', '.join(PLACEHOLDERS)}"
            )
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
            raise DSPError(
                f"no prompt template '{name}' (packaged ones live in prompts/, or pass a .txt path)"
            ) from None
        return cls(text, f"prompts/{name}.txt")

    def fill(self, input: str, hint: str | None, target: str | None) -> str:
        # str.replace, not str.format: articles are full of braces.
        text = self.text.replace("{input}", input).replace("{hint}", hint or "")
        if target is None:
            return text[: text.index("{target}")].rstrip(" ")
        return text.replace("{target}", target).rstrip("\n")
