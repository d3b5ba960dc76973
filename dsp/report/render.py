"""The Jinja2 environment of the report templates: package data, autoescaping on for every template."""

from __future__ import annotations

import base64
import hashlib
import math
from functools import lru_cache
from typing import Any

MISSING = "–"


def fmt(value: Any, digits: int = 2, sign: bool = False) -> str:
    """A number as the page shows it; a missing one (None, NaN) as a dash, never as a zero."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:{'+' if sign else ''}.{digits}f}"


@lru_cache(maxsize=1)
def environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("dsp.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    return env


@lru_cache(maxsize=1)
def _script() -> tuple[Any, str]:
    """The page's one script, and its hash for the page's Content-Security-Policy (which runs no other)."""
    from importlib import resources

    from markupsafe import Markup

    text = resources.files("dsp.report.templates").joinpath("report.js").read_text(encoding="utf-8")
    return Markup(text), "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def render(template: str, **context: Any) -> str:
    from dsp import __version__

    script, script_hash = _script()
    return (
        environment()
        .get_template(template)
        .render(script=script, script_hash=script_hash, version=__version__, **context)
    )
