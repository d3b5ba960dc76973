"""Bad input, fuzzed (hypothesis): data files, prompt templates and CLI sizes.

Each bad input must give a DSPError (exit code 2 on the CLI) whose one-line message names the
file, the line and the field; never a traceback, never a silent success. A record with a blank text is
left out with a warning instead (an error when no record is left).
"""

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401
from dsp.cli import app
from dsp.data import load_examples
from dsp.errors import DSPError
from dsp.tasks.template import PromptTemplate

runner = CliRunner()
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(lambda s: s.strip())
good = st.builds(lambda a, h: ("good", json.dumps({"article": a, "highlights": h}).encode()), text, text)
huge = st.just(("good", json.dumps({"article": "word " * 50_000, "highlights": "word"}).encode()))
bad = st.one_of(
    st.builds(lambda s: ("json", b'{"article": "' + s.encode() + b'"'), text),  # cut off
    st.sampled_from([("object", b"[1, 2]"), ("object", b'"just a string"'), ("object", b"3")]),
    st.builds(lambda a: ("missing", json.dumps({"article": a}).encode()), text),
    st.sampled_from(
        [
            ("type", b'{"article": 5, "highlights": "x"}'),
            ("type", b'{"article": null, "highlights": "x"}'),
            ("type", b'{"article": {"a": 1}, "highlights": "x"}'),
            ("type", b'{"article": "a", "highlights": [1]}'),
        ]
    ),
    st.sampled_from(
        [("empty", b'{"article": "   ", "highlights": "x"}'), ("empty", b'{"article": "a", "highlights": ""}')]
    ),
    st.sampled_from(
        [
            ("utf8", b'{"article": "caf\xe9", "highlights": "x"}'),
            ("utf8", b'{"article": "\xff\xfe", "highlights": "x"}'),
        ]
    ),
)


@FUZZ
@given(lines=st.lists(st.one_of(good, good, huge, bad), min_size=1, max_size=8))
def test_jsonl_loader_names_the_first_bad_line(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("fuzz") / "train.jsonl"
    path.write_bytes(b"\n".join(raw for _, raw in lines) + b"\n")
    # A blank text is left out (with a warning); any other bad line stops the load with an error naming it.
    first_bad = next((i for i, (kind, _) in enumerate(lines, start=1) if kind not in ("good", "empty")), None)
    good = sum(kind == "good" for kind, _ in lines)
    if first_bad is None and good:
        assert len(load_examples(str(path))) == good
        return
    if first_bad is None:  # nothing but blank records: the first of them is the error
        first_bad = 1
    with pytest.raises(DSPError) as err:
        load_examples(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}:{first_bad}:") and "\n" not in message
    kind = lines[first_bad - 1][0]
    if kind in ("missing", "type", "empty"):
        assert "field '" in message


@FUZZ
@given(body=st.text(max_size=60), placeholders=st.lists(st.sampled_from(["{input}", "{hint}", "{target}"]), max_size=3))
def test_templates_are_checked_and_never_break_on_braces(body, placeholders):
    text = body + "".join(placeholders)
    unknown = [m for m in re.findall(r"\{[A-Za-z_][A-Za-z0-9_]*\}", text) if m not in ("{input}", "{hint}", "{target}")]
    ok = "{input}" in text and "{target}" in text and text.rstrip().endswith("{target}") and not unknown
    try:
        template = PromptTemplate(text)
    except DSPError as e:
        assert not ok and "\n" not in str(e) and "placeholder" in str(e) or "must end with {target}" in str(e)
        return
    assert ok
    filled = template.fill("an {article} with {braces}", "a {hint}", None)  # str.format would raise here
    assert "an {article} with {braces}" in filled


SIZES = {
    "sft": [
        "--batch-size",
        "--epochs",
        "--max-steps",
        "--dev-limit",
        "--eval-every",
        "--save-every",
        "--hint-words",
        "--max-input-tokens",
        "--limit",
    ],
    "rl": [
        "--iterations",
        "--batch-size",
        "--samples-per-input",
        "--update-epochs",
        "--minibatch-size",
        "--dev-limit",
        "--save-every",
        "--concurrency",
        "--llm-timeout",
        "--limit",
    ],
    "eval": ["--limit", "--concurrency", "--llm-timeout"],
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from tests.conftest import synthetic_rows

    d = tmp_path_factory.mktemp("sizes")
    for split in ("train", "dev"):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(8)))
    return d


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from([(c, o) for c, opts in SIZES.items() for o in opts]), value=st.integers(-(10**6), 0))
def test_zero_or_negative_sizes_are_one_line_errors(tiny_data, tmp_path_factory, case, value):
    from dsp.llm.testserver import TestServer

    command, option = case
    out = tmp_path_factory.mktemp("o")
    args = [command, "--data", str(tiny_data), "--output-dir", str(out), option, str(value)]
    if command == "rl":
        args += ["--policy", str(out)]
    with TestServer() as server:
        if command != "sft":
            args += ["--base-url", server.base_url, "--model", "m", "--cache", str(out.parent / f"{out.name}.sqlite")]
        r = runner.invoke(app, args)
    assert r.exit_code == 2, (args, r.output)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.output
    assert option.lstrip("-") in r.stderr.replace("_", "-"), r.stderr
