"""The reports in a real browser: the system's Chromium, driven by Playwright (no browser download).

Skips with one line when Playwright or Chromium is missing; CI installs both (.ci/run, the dev extra).
"""

import json
import math
import time

import pytest

from dsp.metrics import words
from dsp.report.browser import find_chromium
from tests.report.conftest import MARKUP, read_rows, synthetic_eval

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')")
if find_chromium() is None:
    pytest.skip("no Chromium found (apt-get install -y chromium, or set DSP_CHROMIUM)", allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

from dsp.report.browser import chromium  # noqa: E402


@pytest.fixture(scope="module")
def chrome():
    with chromium() as browser:
        yield browser


@pytest.fixture
def browser(chrome):
    """A fresh browser context (its own profile) with JavaScript on."""
    context = chrome.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


class Page:
    """One report opened in the browser, with every request it makes recorded and any beyond its own file refused."""

    def __init__(self, context, path):
        self.url = path.resolve().as_uri()
        self.requests, self.dialogs = [], []
        self.page = context.new_page()
        self.page.route("**/*", self._route)
        self.page.on("request", lambda req: self.requests.append(req.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(self.url)

    def _route(self, route):
        if route.request.url == self.url:
            route.continue_()
        else:
            route.abort()

    def visible_ids(self) -> list[str]:
        return self.page.eval_on_selector_all("#cards > .card:not([hidden])", "cs => cs.map(c => c.dataset.id)")

    def column(self, label: str) -> str:
        return self.page.eval_on_selector(
            f'#sort option:text-is("score of {label}, highest first")', "o => o.value.slice(2)"
        )

    def choose(self, select: str, value: str) -> None:
        self.page.select_option(select, value)


def scores(rows, cond):
    return {r["id"]: r["scores"][cond]["rouge_avg"] for r in rows if r["scores"].get(cond) is not None}


def test_table_numbers_equal_summary_json(browser, eval_runs, tmp_path):
    summary = json.loads((eval_runs["A"] / "summary.json").read_text())
    p = Page(browser, eval_runs["A"] / "report.html")
    for cond, e in summary["conditions"].items():
        row = p.page.locator(f'table.summary tr[data-condition="{cond}"]')
        s = e["rouge_avg"]
        assert row.locator("td.score").inner_text() == f"{s['mean']:.2f} ± {s['ci95']:.2f}"
        d = e.get("delta_vs_none")
        assert row.locator("td.delta").inner_text() == (f"{d['mean']:+.2f} ± {d['ci95']:.2f}" if d else "–")
        f = e.get("hint_f1_vs_oracle")
        assert row.locator("td.f1").inner_text() == (f"{f['mean']:.3f}" if f else "–")
    p.page.screenshot(path=str(tmp_path / "top.png"))
    p.page.screenshot(path=str(tmp_path / "full.png"), full_page=True)
    assert p.requests == [p.url] and p.dialogs == []


def test_sorting_by_a_difference_puts_the_largest_first(browser, eval_runs):
    rows = read_rows(eval_runs["A"])
    pol, tf = scores(rows, "policy"), scores(rows, "tfidf")
    p = Page(browser, eval_runs["A"] / "report.html")
    assert p.page.input_value("#pair") == f"{p.column('policy')}|{p.column('TF-IDF')}"  # the default pair
    p.choose("#sort", "delta-desc")
    shown = p.visible_ids()
    deltas = [pol[i] - tf[i] for i in shown]
    assert len(shown) == len(rows) and deltas == sorted(deltas, reverse=True) and deltas[0] == max(deltas)
    assert len(set(deltas)) > 1  # the order is not vacuous
    p.choose("#sort", f"s:{p.column('oracle')}")
    oracle = scores(rows, "oracle")
    assert [oracle.get(i, -math.inf) for i in p.visible_ids()] == sorted(oracle.get(r["id"], -math.inf) for r in rows)[
        ::-1
    ]


def test_the_filter_hides_the_right_cards(browser, eval_runs):
    rows = read_rows(eval_runs["A"])
    pol, none = scores(rows, "policy"), scores(rows, "none")
    p = Page(browser, eval_runs["A"] / "report.html")
    p.choose("#pair", f"{p.column('policy')}|{p.column('no hint')}")
    won = [r["id"] for r in rows if r["id"] in none and pol[r["id"]] > none[r["id"]]]
    lost = [r["id"] for r in rows if r["id"] in none and pol[r["id"]] < none[r["id"]]]
    p.choose("#show", "a")
    assert p.visible_ids() == won and won
    p.choose("#show", "b")
    assert p.visible_ids() == lost
    p.choose("#show", "failed")
    assert p.visible_ids() == [r["id"] for r in rows if r["failed"]] == ["s0"]
    card = p.page.locator('.card[data-id="s0"]')
    assert (
        "failed" in card.locator(".chip").first.inner_text()
        and "0.00" not in card.locator(".answer").first.inner_text()
    )
    p.choose("#show", "all")
    p.page.fill("#q", "s5")
    expect(p.page.locator("#cards > .card:not([hidden])")).to_have_count(1)  # after the search's short debounce
    assert p.visible_ids() == ["s5"]


def marked_words(p, card_id: str, part: str) -> set[str]:
    """The words of a card's input (or reference) shown highlighted: marks with a background colour."""
    return set(
        p.page.eval_on_selector_all(
            f'.card[data-id="{card_id}"] .{part} mark',
            "ms => ms.filter(m => getComputedStyle(m).backgroundColor !== 'rgba(0, 0, 0, 0)').map(m => m.textContent.toLowerCase())",
        )
    )


def test_highlighted_words_are_the_hint_words_found_in_the_input(browser, eval_runs):
    rows = read_rows(eval_runs["A"])
    p = Page(browser, eval_runs["A"] / "report.html")
    for label, cond in (("policy", "policy"), ("TF-IDF", "tfidf"), ("oracle", "oracle")):
        p.choose("#hl", p.column(label))
        for r in rows:
            hint = set(words(r["hints"][cond]))
            assert marked_words(p, r["id"], "input") == hint & set(words(r["input"])), (cond, r["id"])
            assert marked_words(p, r["id"], "reference") == hint & set(words(r["reference"])), (cond, r["id"])
    assert any(marked_words(p, r["id"], "input") for r in rows)


def test_injected_markup_shows_as_text_and_nothing_leaves_the_page(browser, eval_runs, tmp_path):
    p = Page(browser, eval_runs["A"] / "report.html")
    card = p.page.locator('.card[data-id="s2"]')
    assert MARKUP in card.locator(".input").inner_text()
    assert p.page.eval_on_selector_all("script", "s => s.length") == 1
    assert p.page.eval_on_selector_all(".card b", "bs => bs.filter(b => b.textContent === 'bold').length") == 0
    card.scroll_into_view_if_needed()
    card.screenshot(path=str(tmp_path / "markup-card.png"))
    for select, value in (("#sort", "delta-asc"), ("#show", "a"), ("#show", "all")):
        p.choose(select, value)
    p.page.fill("#q", "owned")
    expect(p.page.locator("#cards > .card:not([hidden])")).to_have_count(1)
    assert p.requests == [p.url] and p.dialogs == []


def test_readable_with_javascript_off(chrome, eval_runs, tmp_path):
    context = chrome.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    try:
        p = Page(context, eval_runs["A"] / "report.html")
        assert p.page.locator("table.summary").is_visible()
        assert not p.page.locator("#controls").is_visible()
        assert len(p.visible_ids()) == len(read_rows(eval_runs["A"]))
        assert p.page.locator('.card[data-id="s3"] .answer').first.is_visible()
        assert marked_words(p, "s3", "input")  # the default hint's words are highlighted by CSS alone
        p.page.screenshot(path=str(tmp_path / "no-js.png"))
    finally:
        context.close()


def test_comparison_page_in_the_browser(browser, eval_runs, tmp_path):
    from dsp.report import write_report

    out = write_report([eval_runs["A"], eval_runs["B"]], tmp_path / "ab.html")
    p = Page(browser, out)
    assert p.page.locator("section.lacking").inner_text().count("s6") == 1
    assert p.page.input_value("#pair") == f"{p.column('B · policy')}|{p.column('A · policy')}"
    p.choose("#sort", "delta-desc")
    a, b = scores(read_rows(eval_runs["A"]), "policy"), scores(read_rows(eval_runs["B"]), "policy")
    shown = p.visible_ids()
    deltas = [b[i] - a[i] for i in shown if i in b]
    assert deltas == sorted(deltas, reverse=True) and shown[-2:] == ["s6", "s7"]  # B lacks them: last
    p.page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    assert p.requests == [p.url]


def test_2000_examples_open_paged(browser, tmp_path):
    from dsp.report import write_report

    out = write_report([synthetic_eval(tmp_path / "big", 2000)])
    started = time.monotonic()
    p = Page(browser, out)
    expect(p.page.locator("#status")).to_have_text("1–50 of 2000", timeout=60_000)
    seconds = time.monotonic() - started
    assert len(p.visible_ids()) == 50 and seconds < 30, seconds
    p.page.click("#next")
    assert p.visible_ids()[0] == "x50"
    p.page.fill("#q", "x1999")
    expect(p.page.locator("#status")).to_have_text("1–1 of 1 shown (2000 in all)", timeout=30_000)
    assert p.visible_ids() == ["x1999"]
    assert p.requests == [p.url]
