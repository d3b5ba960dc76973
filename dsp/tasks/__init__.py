"""Tasks: what a hint is for one kind of problem (pseudo-label, prompt, reward).

A kind is a `Task` subclass in a module of this package (it registers itself; see `task_kinds`) plus a
prompt folder `prompts/<kind>/`.
"""

import importlib
import pkgutil

from dsp.tasks.base import KINDS, Task
from dsp.tasks.summarization import SummarizationTask
from dsp.tasks.template import PromptTemplate

__all__ = ["PromptTemplate", "SummarizationTask", "Task", "task_kinds"]


def task_kinds() -> dict[str, type[Task]]:
    """Every task kind: each module of `dsp.tasks` is imported, and its Task subclasses register themselves,
    so a new kind needs no table edited anywhere."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"dsp.tasks.{module.name}")
    return dict(KINDS)
