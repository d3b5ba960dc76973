"""The atomic JSON writers: what they refuse to write."""

import math

import pytest

from dsp.io import finite_or_none, write_json_atomic, write_jsonl_atomic


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_json_writers_refuse_nan_and_infinity_naming_the_file(tmp_path, value):
    """Issue 29.7: NaN is not JSON; a value that could not be computed is written as null on purpose."""
    for write, obj in ((write_json_atomic, {"a": {"b": [1.0, value]}}), (write_jsonl_atomic, [{"a": value}])):
        with pytest.raises(ValueError, match=r"out\.json.*NaN or infinity"):
            write(tmp_path / "out.json", obj)
        assert not (tmp_path / "out.json").exists()
    write_json_atomic(tmp_path / "out.json", finite_or_none({"a": {"b": [1.0, value]}, "c": (2, value)}))
    assert (
        (tmp_path / "out.json").read_text()
        == '{\n  "a": {\n    "b": [\n      1.0,\n      null\n    ]\n  },\n  "c": [\n    2,\n    null\n  ]\n}\n'
    )


def test_an_eval_of_one_example_writes_strict_json_and_its_report(synth_dir, tmp_path):
    """One example has no confidence interval: summary.json holds null there (was NaN, not JSON), and the
    report page, which reads the files, still draws."""
    import json

    from typer.testing import CliRunner

    import dsp.cli.commands  # noqa: F401  (registers the commands)
    from dsp.cli import app
    from dsp.llm.testserver import TestServer

    with TestServer() as server:
        r = CliRunner().invoke(
            app,
            [
                "eval",
                "--data",
                str(synth_dir),
                "--output-dir",
                str(tmp_path / "ev"),
                "--limit",
                "1",
                "--conditions",
                "none,oracle",
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--cache",
                str(tmp_path / "c.sqlite"),
            ],
        )
    assert r.exit_code == 0, r.output

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    summary = json.loads((tmp_path / "ev" / "summary.json").read_text(), parse_constant=refuse)
    assert summary["conditions"]["oracle"]["rouge_avg"]["ci95"] is None
    assert (tmp_path / "ev" / "report.html").exists()
