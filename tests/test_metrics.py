import math

import pytest

from dsp.metrics import hint_f1, mean_ci, rouge_scores


def test_rouge_identical_and_disjoint():
    s = rouge_scores("The cat sat on the mat. It purred.", "The cat sat on the mat.\nIt purred.")
    assert s["rouge1"] == pytest.approx(100) and s["rougeLsum"] == pytest.approx(100)
    assert rouge_scores("zebra quantum", "the cat sat")["rouge_avg"] == 0


def test_rouge_known_value_with_stemming():
    # unigrams: pred {cats, running} vs ref {cat, run, fast}: stemmed overlap 2 -> P=1, R=2/3, F=0.8
    assert rouge_scores("cats running", "cat run fast")["rouge1"] == pytest.approx(80.0)


def test_hint_f1():
    assert hint_f1("Paris; France", "France; Paris") == 1.0
    assert hint_f1("a b", "b c") == pytest.approx(0.5)
    assert hint_f1("", "x") == 0.0 and hint_f1("", "") == 1.0


def test_mean_ci_known_values():
    mean, ci = mean_ci([1.0, 2.0, 3.0, 4.0])
    # sd = 1.291, t(3) = 3.182 -> 3.182 * 1.291 / 2 = 2.054
    assert mean == 2.5 and ci == pytest.approx(2.054, abs=1e-3)
    mean, ci = mean_ci([float("nan"), 5.0])
    assert mean == 5.0 and math.isnan(ci)
