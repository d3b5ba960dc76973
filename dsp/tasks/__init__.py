"""Tasks: what a hint is for one kind of problem (pseudo-label, prompt, reward)."""

from dsp.tasks.base import PromptTemplate, Task
from dsp.tasks.summarization import SummarizationTask

__all__ = ["PromptTemplate", "SummarizationTask", "Task"]
