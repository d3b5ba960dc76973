"""`dsp eval` writes report.html; `dsp report` rebuilds and compares from run folders alone (no browser here)."""

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dsp.cli import app
from tests.report.conftest import KEY, MARKUP, read_rows, snapshot, synthetic_eval

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
PAIR_ROW = re.compile(
    r'<tr data-pair="[^"]*"><th>(.*?)</th><td class="num delta">([+-]\d+\.\d\d) '
    r'<span class="ci">± (\d+\.\d\d)</span></td><td class="num">(\d+)</td>'
)


def pair_rows(page: str) -> dict[str, tuple[float, float, int]]:
    """{pair label: (mean, CI half-width, n)} from the page's table of paired differences."""
    return {html.unescape(label): (float(m), float(ci), int(n)) for label, m, ci, n in PAIR_ROW.findall(page)}


def test_eval_writes_the_report_and_prints_its_path(eval_runs):
    a, _ = eval_runs["outputs"]
    page = (eval_runs["A"] / "report.html").read_text()
    assert a.stdout.strip().splitlines()[-1] == f"report: {eval_runs['A'] / 'report.html'}"
    summary = json.loads((eval_runs["A"] / "summary.json").read_text())
    assert summary["command"].startswith("dsp eval --data ") and "--api-key '***'" in summary["command"]
    assert KEY not in page and KEY not in (eval_runs["A"] / "summary.json").read_text()
    assert summary["endpoint"] == "completions" and summary["base_url"].startswith("http://127.0.0.1:")
    assert summary["cache_namespace"] == summary["base_url"] and "answers cached as" not in page
    # the page's table of paired differences holds summary.json's numbers (rounded as shown)
    shown = pair_rows(page)
    assert len(shown) == len(summary["pairs"]) == 6
    labels = {"none": "no hint", "tfidf": "TF-IDF", "policy": "policy", "oracle": "oracle"}
    for p in summary["pairs"].values():
        mean, ci, n = shown[f"{labels[p['a']]} − {labels[p['b']]}"]
        assert (mean, ci, n) == (round(p["mean"], 2), round(p["ci95"], 2), p["n"])
    rows = read_rows(eval_runs["A"])
    assert rows[0]["failed"] == ["none"] and rows[0]["scores"]["none"] is None
    assert "The LLM call failed for good: " in page and summary["complete"] == 7


def test_markup_in_an_article_or_answer_is_escaped(eval_runs):
    page = (eval_runs["A"] / "report.html").read_text()
    assert MARKUP in html.unescape(re.sub(r"</?mark[^>]*>", "", page))  # it is there, as text
    assert "<script>alert" not in page and "</div><b>" not in page
    assert page.count("<script") == 1  # the page's own script only
    assert "&lt;" in page and "&lt;/" in page


def test_dsp_report_rebuilds_the_same_page_and_changes_nothing_else(eval_runs):
    folder = eval_runs["A"]
    before = snapshot(folder)  # report.html as dsp eval wrote it
    r = runner.invoke(app, ["report", str(folder)])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == str(folder / "report.html")
    assert snapshot(folder) == before  # the same page, byte for byte, from the folder's files alone


def test_two_folders_compare_paired_by_id_as_bench_paired_does(eval_runs, tmp_path):
    a, b = eval_runs["A"], eval_runs["B"]
    before = snapshot(a) | {f"B/{k}": v for k, v in snapshot(b).items()}
    out = tmp_path / "ab.html"
    r = runner.invoke(app, ["report", str(a), str(b), "--output", str(out)])
    assert r.exit_code == 0, r.output
    page = out.read_text()
    assert before == snapshot(a) | {f"B/{k}": v for k, v in snapshot(b).items()}
    shown = pair_rows(page)
    for cond, label in (("policy", "policy"), ("tfidf", "TF-IDF"), ("none", "no hint")):
        bench = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "paired.py"),
                f"{b}/examples.jsonl:{cond}",
                f"{a}/examples.jsonl:{cond}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        expected = json.loads(bench.stdout)
        assert shown[f"B · {label} − A · {label}"] == (expected["diff"], expected["diff_ci"], expected["n"])
    assert shown["B · policy − A · policy"][0] != 0  # other hint lengths: the comparison is not trivially zero
    assert "<b>B</b> lacks 2: <code>s6</code>, <code>s7</code>" in page
    assert not any(k.startswith("A · oracle") for k in shown)  # B has no oracle column to pair with


def test_a_folder_from_before_inputs_and_pairs_were_recorded_gets_them_from_its_data_and_rows(eval_runs, tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(eval_runs["A"], folder)
    rows = read_rows(folder)
    (folder / "examples.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k not in ("input", "reference")}) + "\n" for r in rows)
    )
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "pairs"}))
    r = runner.invoke(app, ["report", str(folder)])
    assert r.exit_code == 0, r.output
    page = (folder / "report.html").read_text()
    # the pairs it did not record are computed as dsp eval computes them
    assert sorted(pair_rows(page).values()) == sorted(
        (round(p["mean"], 2), round(p["ci95"], 2), p["n"]) for p in summary["pairs"].values()
    )
    assert "inputs read from" in page and page.count('<p class="input">') == len(rows)
    assert '<p class="input"></p>' not in page and '<p class="reference"></p>' not in page


def bad_folders(eval_runs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    damaged = tmp_path / "damaged"
    shutil.copytree(eval_runs["A"], damaged)
    lines = (damaged / "examples.jsonl").read_text().splitlines(keepends=True)
    lines[2] = lines[2][: len(lines[2]) // 2] + "\n"
    (damaged / "examples.jsonl").write_text("".join(lines))
    no_field = tmp_path / "no_field"
    shutil.copytree(eval_runs["A"], no_field)
    rows = read_rows(no_field)
    del rows[4]["scores"]
    (no_field / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    no_stats = tmp_path / "no_stats"
    shutil.copytree(eval_runs["A"], no_stats)
    summary = json.loads((no_stats / "summary.json").read_text())
    del summary["conditions"]["policy"]["rouge_avg"]["ci95"]
    (no_stats / "summary.json").write_text(json.dumps(summary))
    other = tmp_path / "other"
    shutil.copytree(eval_runs["B"], other)
    summary = json.loads((other / "summary.json").read_text())
    (other / "summary.json").write_text(json.dumps(summary | {"task": "xsum"}))
    return {
        "EMPTY": empty,
        "DAMAGED": damaged,
        "NOFIELD": no_field,
        "NOSTATS": no_stats,
        "OTHER": other,
        "A": eval_runs["A"],
        "DATA": eval_runs["data"],
        "MISSING": tmp_path / "nowhere",
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (["EMPTY"], "empty: not a run folder of dsp eval (summary.json and examples.jsonl) or dsp rl"),
        (["DATA"], "data: not a run folder"),
        (["MISSING"], "nowhere: no such run folder"),
        (["DAMAGED"], "damaged/examples.jsonl:3: not valid JSON"),
        (["NOFIELD"], "no_field/examples.jsonl:5: field 'scores': missing"),
        (["NOSTATS"], "no_stats/summary.json: field 'conditions.policy.rouge_avg': missing"),
        (["A", "OTHER"], "is an eval of task 'xsum'"),
        (["A", "A"], "named twice"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(eval_runs, tmp_path, args, message):
    folders = bad_folders(eval_runs, tmp_path)
    watched = [f for f in folders.values() if f.exists()]
    before = [snapshot(f) for f in watched]
    r = runner.invoke(app, ["report", *[str(folders[a]) for a in args]])
    assert r.exit_code == 2, r.output
    assert message in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.output
    assert [snapshot(f) for f in watched] == before
    assert not Path("comparison.html").exists()


def test_a_page_of_100_examples_stays_under_2_mb(tmp_path):
    from dsp.report import write_report

    page = write_report([synthetic_eval(tmp_path / "ev", 100)])
    size = page.stat().st_size
    assert 300_000 < size <= 2_000_000, size  # the 100 cards are all there, each with its 400-word input


def test_command_line_is_rebuilt_without_secrets():
    import typer

    from dsp.cli.common import command_line

    probe = typer.Typer()

    @probe.command()
    def run(ctx: typer.Context, base_url: str = "", api_key: str = "", limit: int = 5, resume: bool = False) -> None:
        typer.echo(command_line(ctx))

    r = runner.invoke(probe, ["--base-url", "https://me:pw@example.com:8443/v1", "--api-key", KEY, "--resume"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "dsp --base-url https://example.com:8443/v1 --api-key '***' --resume"


def test_the_header_names_a_cache_namespace_apart_from_the_url(eval_runs, tmp_path):
    # the embedded LLM: its URL is a stand-in, the namespace names the llama.cpp build and model file
    folder = tmp_path / "embedded"
    shutil.copytree(eval_runs["B"], folder)
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps(summary | {"cache_namespace": "embedded:gemma-3-270m <q4>"}))
    r = runner.invoke(app, ["report", str(folder)])
    assert r.exit_code == 0, r.output
    assert "answers cached as <code>embedded:gemma-3-270m &lt;q4&gt;</code>" in (folder / "report.html").read_text()
