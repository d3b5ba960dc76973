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


@pytest.mark.parametrize(
    "df, table",
    [
        (1, 12.706),
        (2, 4.303),
        (5, 2.571),
        (30, 2.042),
        (31, 2.040),
        (32, 2.037),
        (40, 2.021),
        (100, 1.984),
        (1000, 1.962),
    ],
)
def test_t_quantile_matches_the_table(df, table):
    from dsp.metrics import t_quantile

    assert t_quantile(0.975, df) == pytest.approx(table, abs=5e-4)


def test_t_quantile_matches_scipy_where_installed():
    stats = pytest.importorskip("scipy.stats")
    from dsp.metrics import t_quantile

    for df in (1, 3, 7, 29, 33, 50, 250, 5000):
        for p in (0.9, 0.975, 0.995):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-8)


def test_mean_ci_past_31_uses_t_not_1_96():
    # n = 33: t(0.975, 32) = 2.037, where the old table fell back to 1.96 (CI 4% too narrow)
    xs = [float(i % 5) for i in range(33)]
    mean, ci = mean_ci(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / 32)
    assert ci == pytest.approx(2.0369 * sd / math.sqrt(33), rel=1e-4)


def test_bleu_known_values():
    from dsp.metrics import bleu

    assert bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(100.0)
    assert bleu("", "the cat") == 0.0 and bleu("dog", "the cat sat on the mat") < 5
    # 5 of 5 unigrams, 3 of 4 bigrams, 2 of 3 trigrams, 1 of 2 4-grams; brevity penalty exp(1 - 6/5)
    import math

    expected = 100 * math.exp(1 - 6 / 5) * (5 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert bleu("the cat sat on mat", "the cat sat on the mat") == pytest.approx(expected, rel=1e-6)


def test_final_number_and_exact_match():
    from dsp.metrics import exact_match_number, final_number

    assert final_number("She has 3 apples, then 1,200.50 dollars.") == 1200.5
    assert final_number("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs.\n#### 18") == 18
    assert final_number("no digits here") is None
    assert exact_match_number("So the answer is 72.", "#### 72") == 1.0
    assert exact_match_number("So the answer is 72.0", 72) == 1.0
    assert exact_match_number("So the answer is 71", "#### 72") == 0.0
    assert exact_match_number("I cannot tell", 5) == 0.0


def test_slot_recall():
    from dsp.metrics import slot_recall

    assert slot_recall(
        "The Golden Wok serves Chinese food in the centre.", ["golden wok", "chinese", "north"]
    ) == pytest.approx(2 / 3)
    assert slot_recall("anything", []) == 1.0
    assert slot_recall("cheapest", ["cheap"]) == 0.0  # whole words only


def test_warm_up_loads_the_metrics_library_in_the_background():
    import subprocess
    import sys

    code = (
        "import sys; from dsp.metrics import warm_up; names = {}; "
        "[warm_up(m).join() or names.update({m: 'nltk' in sys.modules}) for m in ('exact_match', 'rouge_avg')]; "
        "print(names, 'rouge_score.rouge_scorer' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "{'exact_match': False, 'rouge_avg': True} True"  # nothing for exact match, ROUGE's for ROUGE


def test_hint_hits_are_the_papers_plus_one_and_minus_a_quarter():
    from dsp.metrics import hint_hits

    ref = "Jose Mourinho picked the Premier League's best XI on Monday."
    assert hint_hits("Jose Mourinho; premier league; Chelsea", ref, "; ") == [1.0, 1.0, -0.25]
    assert hint_hits("monday xi banana", ref, " ") == [1.0, 1.0, -0.25]  # a space separator: words are phrases
    assert hint_hits("", ref, "; ") == [] and hint_hits(" ; ;", ref, "; ") == []
    assert hint_hits("League Premier", ref, "; ") == [-0.25]  # a phrase is a word sequence, in order
