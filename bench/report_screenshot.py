"""Screenshot of a run folder's HTML report in the system's Chromium (headless), e.g. for the README.

    python -m bench.report_screenshot runs/demo/eval --output docs/report.png
    python -m bench.report_screenshot runs/demo/eval --output top.png --height 1400 --no-full-page

The report is rebuilt from the folder first (`dsp report`, which only writes report.html). Every request the
page makes is counted and refused; the script fails if there was any, so the picture is of a page that opened
offline. Needs the `dev` extra (Playwright) and Chromium (apt-get install -y chromium).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dsp.report import write_report
from dsp.report.browser import chromium


def screenshot(
    run_dirs: list[Path], output: Path, width: int, height: int, full_page: bool, page_html: Path | None
) -> int:
    """Write the PNG; returns the number of requests the page tried beyond its own file (0 on success)."""
    html = write_report(run_dirs, page_html)
    url = html.resolve().as_uri()
    tried: list[str] = []

    def refuse(route) -> None:
        if route.request.url != url:
            tried.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    with chromium() as browser:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.route("**/*", refuse)
        page = context.new_page()
        page.goto(url)
        page.wait_for_load_state("load")
        output.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(output), full_page=full_page)
    for u in tried:
        print(f"refused request: {u}")
    return len(tried)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dirs", nargs="+", type=Path, help="a dsp eval or dsp rl folder, or several eval folders")
    ap.add_argument("--output", type=Path, default=Path("report.png"))
    ap.add_argument("--page", type=Path, default=None, help="where the page goes (default: as `dsp report` puts it)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1600, help="the window's height; with --no-full-page, the picture's")
    ap.add_argument(
        "--no-full-page", dest="full_page", action="store_false", help="only the window, not the whole page"
    )
    args = ap.parse_args()
    refused = screenshot(args.run_dirs, args.output, args.width, args.height, args.full_page, args.page)
    print(f"wrote {args.output}")
    if refused:
        raise SystemExit(f"the page tried {refused} request(s) beyond its own file")


if __name__ == "__main__":
    main()
