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
    assert (tmp_path / "out.json").read_text() == '{\n  "a": {\n    "b": [\n      1.0,\n      null\n    ]\n  },\n  "c": [\n    2,\n    null\n  ]\n}\n'
