"""Built-in task configs (installed as package data `dsp.task_configs`; see dsp/tasks/config.py)."""
