"""Tasks: what a hint is for one kind of problem (pseudo-label, prompt, reward).

A kind is a `Task` subclass in a module of this package (it registers itself; see `task_kinds`) plus a
prompt folder `prompts/<kind>/`.
"""

from dsp.tasks.base import PromptTemplate, Task, task_kinds
from dsp.tasks.summarization import SummarizationTask

__all__ = ["PromptTemplate", "SummarizationTask", "Task", "task_kinds"]
