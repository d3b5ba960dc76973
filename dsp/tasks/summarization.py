"""Summarization (CNN/DailyMail by default): keyword hints, ROUGE reward."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dsp.data import Example
from dsp.metrics import rouge_scores
from dsp.tasks.base import Task
from dsp.tasks.stopwords import STOPWORDS

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
class SummarizationTask(Task):
    """Keywords of the reference that occur in the article are the hint; ROUGE-avg is the reward."""

    kind = "summarization"
    labeller = "reference_phrases"
    metrics = ("rouge_avg", "rouge1", "rouge2", "rougeLsum")
    extractive_hints = True  # a hint is words of the input: an extractive policy can write it
    name: str = "summarization"
    stop: tuple[str, ...] = ("\n\n", "\nArticle:")
    max_phrase_words: int = 4
    """Longest hint phrase the pseudo-labeller takes from the reference."""

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

    def score(self, output: str, example: Example) -> dict[str, float]:
        return rouge_scores(output, example.target)
