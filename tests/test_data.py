import json

import pytest

from dsp.data import load_examples
from dsp.errors import DSPError, InputError


def write(path, text):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def test_folder_split_and_limit(synth_dir):
    ex = load_examples(str(synth_dir), split="dev", limit=3)
    assert [e.id for e in ex] == ["s0", "s1", "s2"]
    assert ex[0].where.endswith("dev.jsonl:1")


@pytest.mark.parametrize(
    "content, match",
    [
        ('{"article": "a", "highlights": "b"}\n{"article": "a",\n', r"x\.jsonl:2: not valid JSON"),
        (
            '{"article": "a", "highlights": "b"}\n{"text": "a", "highlights": "b"}\n',
            r"x\.jsonl:2: field 'article': missing",
        ),
        ('{"article": 3, "highlights": "b"}\n', r"x\.jsonl:1: field 'article': expected text, got int"),
        ('{"article": "  ", "highlights": "b"}\n', r"x\.jsonl:1: field 'article': empty text"),
        ("[1, 2]\n", r"x\.jsonl:1: expected a JSON object, got list"),
        (
            b'{"article": "ok", "highlights": "b"}\n{"article": "caf\xe9", "highlights": "b"}\n',
            r"x\.jsonl:2: not UTF-8 text \(byte 0xe9",
        ),
        ("", r"x\.jsonl: no examples"),
    ],
)
def test_bad_jsonl_names_file_line_field(tmp_path, content, match):
    with pytest.raises(InputError, match=match):
        load_examples(write(tmp_path / "x.jsonl", content))


def test_field_mapping_json_and_csv(tmp_path):
    rows = [{"doc": "some text", "summary": "short", "id": 7}]
    ex = load_examples(write(tmp_path / "r.json", json.dumps(rows)), input_field="doc", target_field="summary")
    assert ex[0].input == "some text" and ex[0].id == "7"
    ex = load_examples(
        write(tmp_path / "r.csv", "doc,summary\nhello world,hi\n"), input_field="doc", target_field="summary"
    )
    assert ex[0].target == "hi" and ex[0].id == "r.csv:2"
    with pytest.raises(InputError, match=r"r\.json:record 1: field 'article': missing"):
        load_examples(str(tmp_path / "r.json"))


def test_missing_things(tmp_path):
    with pytest.raises(DSPError, match="no such file"):
        load_examples(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DSPError, match="no file for split 'test'"):
        load_examples(str(tmp_path), split="test")
    with pytest.raises(DSPError, match="--limit must be positive"):
        load_examples(str(tmp_path), limit=0)


def test_real_cnndm_loads(cnndm_dir):
    ex = load_examples(str(cnndm_dir), split="dev")
    assert len(ex) == 250 and all(e.input and e.target for e in ex)


def test_csv_keeps_line_breaks_in_quoted_fields_and_names_first_lines(tmp_path, caplog):
    """Issue 29.3: a quoted field holding line breaks is read whole; ids and errors name the record's first line."""
    import csv

    rows = [
        {"article": "Last year .\nAnd Jose came back .", "highlights": "Jose came back ."},
        {"article": "One line .", "highlights": "Short ."},
        {"article": "Two\r\nlines .", "highlights": "Two ."},
    ]
    path = tmp_path / "t.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["article", "highlights"])
        w.writeheader()
        w.writerows(rows)
    ex = load_examples(str(path))
    assert [e.input for e in ex] == [r["article"] for r in rows]
    assert [e.id for e in ex] == ["t.csv:2", "t.csv:4", "t.csv:5"]  # each record's first line
    empty = write(tmp_path / "e.csv", 'article,highlights\n"a\nb",c\n\n"x\ny\nz",""\n')
    with caplog.at_level("WARNING"):
        assert [e.input for e in load_examples(empty)] == ["a\nb"]
    assert "e.csv:5: field 'highlights': empty text: left out" in caplog.text
    bad = write(tmp_path / "b.csv", b'article,highlights\n"a\nb",c\n"caf\xe9",d\n')
    with pytest.raises(InputError, match=r"b\.csv:4: not UTF-8 text"):
        load_examples(bad)


def test_a_folder_without_the_split_names_the_splits_it_has(tmp_path):
    from typer.testing import CliRunner

    import dsp.cli.commands  # noqa: F401  (registers the commands)
    from dsp.cli import app

    (tmp_path / "validation.jsonl").write_text('{"article": "a b", "highlights": "b"}\n')
    with pytest.raises(DSPError, match=r"no file for split 'dev'.*split 'validation'.*--split validation"):
        load_examples(str(tmp_path), split="dev")
    r = CliRunner().invoke(
        app,
        [
            "eval",
            "--data",
            str(tmp_path),
            "--output-dir",
            str(tmp_path / "o"),
            "--conditions",
            "none",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
        ],
    )
    assert r.exit_code == 2 and "--split validation" in r.stderr and r.stderr.count("\n") == 1, r.output


def test_a_split_may_join_several_and_cut_each_to_a_range(tmp_path):
    import json

    from dsp.data import load_examples

    for split, n in (("train", 3), ("validation", 5)):
        (tmp_path / f"{split}.jsonl").write_text(
            "".join(json.dumps({"article": f"{split} {i}", "highlights": "s"}) + "\n" for i in range(n))
        )
    got = load_examples(str(tmp_path), split="train,validation[2:4]")
    assert [e.input for e in got] == ["train 0", "train 1", "train 2", "validation 2", "validation 3"]
    assert got[-1].where.endswith("validation.jsonl:4")  # lines are the file's own, not renumbered
    assert [e.input for e in load_examples(str(tmp_path), split="validation[3:]", limit=1)] == ["validation 3"]
    for bad in ("train,validation[x:]", "train[1]", ""):
        with pytest.raises(DSPError, match="optional \\[start:end\\]"):
            load_examples(str(tmp_path), split=bad)
    with pytest.raises(DSPError, match="holds no examples"):
        load_examples(str(tmp_path), split="validation[9:]")


def test_a_blank_record_is_left_out_with_a_warning_naming_it(tmp_path, caplog):
    """XSum's train split holds empty documents: the rest of the file still loads, the blank ones named once."""
    rows = [{"id": str(i), "article": "  " if i in (2, 4) else f"a{i}", "highlights": f"h{i}"} for i in range(1, 6)]
    path = write(tmp_path / "x.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level("WARNING"):
        ex = load_examples(path, limit=3)
    assert [e.id for e in ex] == ["1", "3", "5"]
    assert "x.jsonl:2: field 'article': empty text" in caplog.text and "1 more" in caplog.text
    assert "3 examples kept" in caplog.text


def test_a_range_counts_blank_records_and_a_blank_reference_no_one_needs_is_kept(tmp_path, caplog):
    rows = [
        {"id": str(i), "article": " " if i == 2 else f"a{i}", "highlights": "" if i == 4 else f"h{i}"}
        for i in range(1, 6)
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level("WARNING"):
        ex = load_examples(str(tmp_path), split="train[2:]")  # records 3-5: record 4's blank reference left out
    assert [e.id for e in ex] == ["3", "5"] and caplog.text.count("left out") == 1
    assert "train.jsonl:4: field 'highlights': empty text: left out, 2 examples kept" in caplog.text
    assert "train.jsonl:2" not in caplog.text  # outside the range: not this load's to report
    inputs = load_examples(str(tmp_path), split="train", need_target=False)  # dsp hint's inputs: one per line
    assert [(e.id, e.target) for e in inputs] == [("1", "h1"), ("3", "h3"), ("4", ""), ("5", "h5")]
    with pytest.raises(InputError, match=r"train\.jsonl:2: field 'article': empty text"):
        load_examples(str(tmp_path), split="train[1:2]")
