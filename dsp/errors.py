"""Errors a user can act on. The CLI prints them as one line and exits with their code."""

from __future__ import annotations


class DSPError(Exception):
    """A problem the user can fix: bad input, a missing setting. Exit code 2."""

    exit_code = 2


class InputError(DSPError):
    """Bad input data: the message names the file, the line and the field."""

    def __init__(self, path: object, line: int | None, field: str | None, problem: str):
        where = str(path)
        if line is not None:
            where += f":{line}"
        if field:
            where += f": field '{field}'"
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.field, self.problem = path, line, field, problem


class MissingSplit(DSPError):
    """A data folder has no file for the requested split."""


class BudgetExceeded(DSPError):
    """The next LLM call would pass --max-llm-calls or --max-cost. Exit code 3: work so far is kept.

    `cap` says which cap stopped it, without the advice on going on: a caller that goes on another way
    (a trainer resuming from its checkpoint) words its own.
    """

    exit_code = 3

    def __init__(self, message: str, cap: str | None = None):
        super().__init__(message)
        self.cap = cap or message


class LLMError(DSPError):
    """An LLM call failed for good (after its retries, or a client error such as 400/401)."""

    exit_code = 4


class LLMBackendGone(LLMError):
    """The embedded LLM's server process has ended: no call can succeed, so none is retried."""
