"""The `dsp` command line: one thin module per command (options -> config -> one library call -> print).

Installed as `dsp.cli` (see pyproject.toml), so no top-level `cli` module lands in site-packages.
"""

from __future__ import annotations

from dsp.cli.root import app


def _register() -> None:
    from dsp.cli import commands  # noqa: F401  (registers the commands on `app`)


def main() -> None:
    _register()
    app()
