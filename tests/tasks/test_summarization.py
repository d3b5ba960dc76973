import pytest

from dsp.data import Example
from dsp.errors import DSPError
from dsp.tasks import PromptTemplate, SummarizationTask

ARTICLE = (
    "Arsene Wenger called for the Ballon d'Or to be scrapped . The Chelsea boss Jose Mourinho agrees with "
    "his great Premier League rival , and says the award is unfair ."
)
REFERENCE = "Jose Mourinho backs his great Premier League rival Arsene Wenger .\nHe wants the Ballon d’Or scrapped ."


def test_pseudo_label_phrases_in_reference_order():
    task = SummarizationTask()
    hint = task.pseudo_label(Example("1", ARTICLE, REFERENCE))
    phrases = hint.split("; ")
    assert phrases[0] == "Jose Mourinho"
    assert "backs" not in hint  # not in the article
    assert any("Premier League rival" in p for p in phrases)  # one unbroken phrase
    assert any("Ballon d’Or" in p for p in phrases)  # curly apostrophe matches straight one
    assert all(p.lower() not in ("he", "the", "his") for p in phrases)


def test_prompt_with_and_without_hint():
    task = SummarizationTask()
    ex = Example("1", ARTICLE, REFERENCE)
    shot = Example("0", "Rain fell in Leeds on Monday .", "Rain in Leeds .")
    plain = task.prompt(ex, None, [shot])
    hinted = task.prompt(ex, "Mourinho; Wenger", [shot])
    assert "Hint:" not in plain and plain.endswith("A:")
    assert hinted.endswith("Hint: Mourinho; Wenger\nA:")
    assert hinted.count("Article:") == 2 and "A: Rain in Leeds ." in hinted


def test_template_must_have_placeholders(tmp_path):
    bad = tmp_path / "t.txt"
    bad.write_text("Text: {hint}\nSummary: {target}\n")
    with pytest.raises(DSPError, match=r"t\.txt: prompt template has no \{input\}"):
        PromptTemplate.load(str(bad))
    with pytest.raises(DSPError, match="no prompt template 'nope/x'"):
        PromptTemplate.load("nope/x")


def test_braces_in_article_survive():
    t = PromptTemplate.load("summarization/plain")
    assert "{weird} {input}" in t.fill("{weird} {input}", None, None)
