"""Summarization (CNN/DailyMail by default): keyword hints, ROUGE reward."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from dsp.data import Example
from dsp.metrics import rouge_scores
from dsp.tasks.base import PromptTemplate
from dsp.tasks.stopwords import STOPWORDS

if TYPE_CHECKING:
    from dsp.llm.client import LLMRequest

# Words with inner hyphens/apostrophes/periods kept whole ("U.S.", "ne'er", "well-known");
# any other punctuation ends a phrase.
_TOKEN = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _is_word(token: str) -> bool:
    return token[0].isalnum() or token[0] == "_"


def _norm(token: str) -> str:
    return token.lower().replace("’", "'")


@dataclass
class SummarizationTask:
    """Keywords of the reference that occur in the article are the hint; ROUGE-avg is the reward."""

    extractive_hints = True  # a hint is words of the input: an extractive policy can write it
    name: str = "summarization"
    separator: str = "; "
    """Joins hint phrases."""
    max_input_words: int = 400
    """Article words kept in an LLM prompt (the rest is cut: small LLMs have short contexts)."""
    shot_input_words: int = 200
    """Article words kept in each few-shot example."""
    shots: int = 1
    """Few-shot examples per LLM prompt when the command line does not say (--shots)."""
    max_phrase_words: int = 4
    """Longest hint phrase the pseudo-labeller takes from the reference."""
    max_tokens: int = 96
    """Most tokens the LLM may write for one summary."""
    stop: tuple[str, ...] = ("\n\n", "\nArticle:")
    """Where the LLM's answer ends."""
    metric: str = "rouge_avg"
    """The score that is the reward."""
    with_hint: PromptTemplate = field(default_factory=lambda: PromptTemplate.load("summarization/with_hint"))
    plain: PromptTemplate = field(default_factory=lambda: PromptTemplate.load("summarization/plain"))
    _shot_blocks: dict[tuple[Example, bool], str] = field(default_factory=dict, repr=False, compare=False)

    def pseudo_label(self, example: Example) -> str:
        """Phrases of the reference that also occur in the article, in reference order, joined by `; `.

        The reference is cut at punctuation into segments; each segment is split into runs of
        up to `max_phrase_words` words that occur verbatim (case-insensitive) in the article.
        Among all such splits we keep the one with the largest sum of (content words in a
        run)^2, so "Premier League rival" beats "Premier; League rival". Stop words are then
        stripped from each run's ends; empty and repeated phrases are dropped.
        """
        article = " " + " ".join(_norm(t) for t in _tokens(example.input)) + " "
        phrases: list[str] = []
        seen: set[str] = set()
        for segment in self._segments(example.target):
            for span in self._best_split(segment, article):
                while span and _norm(span[0]) in STOPWORDS:
                    span = span[1:]
                while span and _norm(span[-1]) in STOPWORDS:
                    span = span[:-1]
                phrase = " ".join(span)
                if span and phrase.lower() not in seen and len(phrase) > 1:
                    seen.add(phrase.lower())
                    phrases.append(phrase)
        return self.separator.join(phrases)

    @staticmethod
    def _segments(text: str) -> list[list[str]]:
        segments: list[list[str]] = [[]]
        for token in _tokens(text):
            if _is_word(token):
                segments[-1].append(token)
            elif segments[-1]:
                segments.append([])
        return [s for s in segments if s]

    def _best_split(self, words: list[str], article: str) -> list[list[str]]:
        """Runs of `words` found in `article`, chosen by dynamic programming from the right."""
        m = len(words)
        # best[i]: (score, runs) for words[i:]
        best: list[tuple[int, list[list[str]]]] = [(0, [])] * (m + 1)
        for i in range(m - 1, -1, -1):
            choice = best[i + 1]  # words[i] left out
            for n in range(1, min(self.max_phrase_words, m - i) + 1):
                span = words[i : i + n]
                if f" {' '.join(_norm(t) for t in span)} " not in article:
                    break  # a longer run contains this one, so it cannot occur either
                content = sum(_norm(t) not in STOPWORDS for t in span)
                score = best[i + n][0] + content * content
                if score > choice[0]:
                    choice = (score, [span] + best[i + n][1])
            best[i] = choice
        return best[0][1]

    def _block(self, template: PromptTemplate, example: Example, hint: str | None, words: int, target: str | None) -> str:
        text = " ".join(example.input.split()[:words])
        return template.fill(text, hint, target)

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
        the one its endpoint takes; the cache key is the prompt's), with this task's length and stop strings."""
        from dsp.llm.client import LLMRequest  # the openai SDK loads with the first request, not with the task

        return LLMRequest(prompt=self.prompt(example, hint, shots), messages=self.messages(example, hint, shots),
                          max_tokens=self.max_tokens, stop=self.stop, temperature=temperature, sample_index=sample_index)

    def score(self, output: str, example: Example) -> dict[str, float]:
        return rouge_scores(output, example.target)
