"""A headless Chromium to look at reports with: the system's (Debian's `chromium`), driven by Playwright.

Playwright's own browser download is never used (`playwright install` needs a network this project does not
count on): the executable is the one installed by the system's package manager. Used by the browser tests and
by bench/report_screenshot.py; Playwright comes with the `dev` extra.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def find_chromium() -> str | None:
    """The Chromium to drive: $DSP_CHROMIUM, else the first of CANDIDATES on PATH."""
    if os.environ.get("DSP_CHROMIUM"):
        return os.environ["DSP_CHROMIUM"]
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900, javascript: bool = True) -> Iterator:
    """A Playwright browser context on the system's Chromium, with a fresh profile that is removed afterwards."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise RuntimeError("no Chromium found: install it (apt-get install -y chromium) or set DSP_CHROMIUM")
    profile = Path(tempfile.mkdtemp(prefix="dsp-chromium-"))
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(profile), executable_path=executable, headless=True, args=list(FLAGS),
                viewport={"width": width, "height": height}, java_script_enabled=javascript)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
