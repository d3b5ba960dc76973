"""Every command's --help as a user sees it (typer's rich renderer): an example, and no help text lost."""

import re

import pytest
import typer
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401  (registers the commands)
from dsp.cli import app

COMMANDS = sorted(cmd.name or cmd.callback.__name__ for cmd in app.registered_commands)
runner = CliRunner()


def squeeze(text: str) -> str:
    # the renderer wraps help into boxed columns: compare without whitespace and box characters
    return re.sub(r"[\s│─╭╮╰╯]+", "", text)


def test_every_command_is_checked():
    assert {"demo", "distill", "eval", "hint", "report", "rl", "sft", "version"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_an_example_and_keeps_bracketed_text(name):
    r = runner.invoke(app, [name, "--help"], env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    assert re.search(r"Examples?:\s*\n?\s*dsp ", r.output), f"dsp {name} --help shows no example"
    command = typer.main.get_command(app).commands[name]
    out = squeeze(r.output)
    for param in command.params:
        help_text = getattr(param, "help", None) or ""
        for bracketed in re.findall(r"\\?\[[^\]]*\]", help_text):
            shown = bracketed.lstrip("\\")
            assert squeeze(shown) in out, f"dsp {name} --help lost {shown!r} from {param.name}'s help"
