"""A headless Chromium to look at reports with: the system's (Debian's `chromium`), driven by Playwright.

Playwright's own browser download is never used (`playwright install` needs a network this project does not
count on): the executable is the one installed by the system's package manager. Used by the browser tests and
by bench/report_screenshot.py; Playwright comes with the `dev` extra.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Iterator

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def find_chromium() -> str | None:
    """The Chromium to drive: $DSP_CHROMIUM, else the first of CANDIDATES on PATH."""
    if os.environ.get("DSP_CHROMIUM"):
        return os.environ["DSP_CHROMIUM"]
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


@contextlib.contextmanager
def chromium() -> Iterator:
    """A Playwright Browser on the system's Chromium; each `browser.new_context()` starts with a fresh profile."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise RuntimeError("no Chromium found: install it (apt-get install -y chromium) or set DSP_CHROMIUM")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=list(FLAGS))
        try:
            yield browser
        finally:
            browser.close()
