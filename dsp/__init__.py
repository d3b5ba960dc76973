"""dsp: Directional Stimulus Prompting.

A small trainable policy writes an instance-specific hint; a frozen black-box LLM reads it.
The data flow every command follows: examples -> Task -> HintPolicy -> prompts -> LLMClient
-> scores -> trainer or eval.
"""

__version__ = "0.1.0"
