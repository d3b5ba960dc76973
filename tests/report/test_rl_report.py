"""`dsp rl` writes report.html at each checkpoint and at the end; `dsp report` rebuilds it from the folder alone."""

import asyncio
import html
import json
import re

from typer.testing import CliRunner

from dsp.cli import app
from dsp.metrics import words
from dsp.train.rl import SHOWN_DEV, run_rl
from tests.report.conftest import snapshot
from tests.train.test_rl import WordListReward, cfg, start_policy  # noqa: F401  (start_policy: a fixture)

runner = CliRunner()


def test_rl_report_follows_the_dev_hints_and_rebuilds_from_the_folder(synth_dir, start_policy, tmp_path):  # noqa: F811
    out = tmp_path / "rl"
    report = out / "report.html"
    seen = []
    config = cfg(synth_dir, out, start_policy, iterations=4, save_every=2, eval_every=2, dev_limit=6)
    asyncio.run(
        run_rl(
            config, WordListReward(), metric_name="words", on_iteration=lambda it, _: seen.append((it, report.exists()))
        )
    )
    assert seen == [(1, False), (2, True), (3, True), (4, True)]  # written with the first checkpoint

    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "dev/hints" in r]
    assert [r["step"] for r in evals] == [0, 2, 4] and all(len(r["dev/hints"]) == SHOWN_DEV for r in evals)
    articles = json.loads((out / "dev_articles.json").read_text())
    assert [a["id"] for a in articles] == [h["id"] for h in evals[0]["dev/hints"]]

    before = snapshot(out)
    report.unlink()
    r = runner.invoke(app, ["report", str(out)])
    assert r.exit_code == 0, r.output
    page = report.read_text()
    assert page == before.pop("report.html").decode()  # the same page from the folder's files alone
    assert snapshot(out) | {"report.html": b""} == before | {"report.html": b""}

    assert "<svg" in page and "reward (batch mean)" in page and "KL to the start policy" in page
    assert "seconds per iteration" in page and "dev score (greedy hints): words" in page
    trails = page.split('<details class="trail"')[1:]
    assert len(trails) == SHOWN_DEV and "</mark>" in page
    for trail, article in zip(trails, articles):
        hints = [h["hint"] for r in evals for h in r["dev/hints"] if h["id"] == article["id"]]
        cells = re.findall(r'<td class="hint">(.*?)</td>', trail)
        assert [html.unescape(re.sub(r"</?mark[^>]*>", "", c)) for c in cells] == hints
        marked = {m.lower() for c in cells for m in re.findall(r"<mark[^>]*>(.*?)</mark>", c)}
        assert marked == {w for h in hints for w in words(h)} & set(words(article["reference"]))
    assert "finished" in page and "algorithm" in page


def test_a_report_that_cannot_be_drawn_is_a_warning_not_a_lost_run(tmp_path, caplog):
    from dsp.train.logs import write_run_report

    (tmp_path / "config.json").write_text('{"command": "rl", "algo": "grpo"}')
    (tmp_path / "log.jsonl").write_text('{"step": 0}\n{"step": 1, "charts/re')  # a line cut by a kill
    write_run_report(tmp_path)
    assert not (tmp_path / "report.html").exists()
    assert "log.jsonl:2: not valid JSON" in caplog.text and f"dsp report {tmp_path}" in caplog.text
