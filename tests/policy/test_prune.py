"""Vocabulary pruning of an extractive policy: smaller, and the same on the texts it was pruned for."""

import json

import torch
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401
from dsp.cli import app
from dsp.data import load_examples
from dsp.policy import load_policy
from dsp.policy.extractive import ExtractivePolicy
from dsp.policy.prune import prune_vocab

runner = CliRunner()


def test_pruned_policy_is_smaller_and_scores_its_texts_the_same(synth_dir, tiny_encoder, tmp_path):
    torch.manual_seed(0)
    policy = ExtractivePolicy.from_encoder(str(tiny_encoder), hint_words=3)
    torch.nn.init.normal_(policy.head.weight, std=1.0)
    policy.train(False)
    texts = [e.input for e in load_examples(synth_dir, split="train")]
    before_scores, before_cands, _ = policy.scores(texts[:6])
    before_hints = policy.generate(texts[:6])
    old_tokens = [policy.tokenizer.convert_ids_to_tokens(ids) for ids in policy.tokenizer(texts[:6])["input_ids"]]
    old_params = policy.num_parameters()

    vocab_before, vocab_after = prune_vocab(policy, texts)
    assert vocab_after < vocab_before / 4 and policy.num_parameters() < old_params
    new_tokens = [policy.tokenizer.convert_ids_to_tokens(ids) for ids in policy.tokenizer(texts[:6])["input_ids"]]
    assert new_tokens == old_tokens  # [CLS] ... [SEP], the same pieces
    after_scores, after_cands, _ = policy.scores(texts[:6])
    assert [c.words for c in after_cands] == [c.words for c in before_cands]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(after_scores, before_scores))
    assert policy.generate(texts[:6]) == before_hints
    # a word the texts never had still tokenizes, into shorter pieces, with no [UNK]
    unseen = policy.tokenizer.convert_ids_to_tokens(policy.tokenizer("zyxwvut quokka")["input_ids"])
    assert "[UNK]" not in unseen and "".join(t.removeprefix("##") for t in unseen[1:-1]) == "zyxwvutquokka"
    policy.save(tmp_path / "pruned")
    again = load_policy(str(tmp_path / "pruned"))
    assert again.generate(texts[:6]) == before_hints and again.num_parameters() == policy.num_parameters()


def test_distill_prune_vocab_through_the_cli(synth_dir, tiny_encoder, tmp_path):
    torch.manual_seed(1)
    teacher = ExtractivePolicy.from_encoder(str(tiny_encoder), hint_words=3)
    teacher.save(tmp_path / "teacher")
    r = runner.invoke(
        app,
        [
            "distill",
            "--teacher",
            str(tmp_path / "teacher"),
            "--data",
            str(synth_dir),
            "--output-dir",
            str(tmp_path / "student"),
            "--student",
            "layers:1",
            "--prune-vocab",
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--dev-limit",
            "4",
        ],
    )
    assert r.exit_code == 0, r.output
    student = load_policy(str(tmp_path / "student"))
    assert student.encoder.config.vocab_size < teacher.encoder.config.vocab_size / 4
    assert len(student.generate(["Anna Berg met Omar Haddad in Lisbon."])) == 1


def _strict_json(path):
    def refuse(constant):
        raise ValueError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_pruned_student_dev_kl_is_a_number_when_dev_words_split_differently(synth_dir, tiny_encoder, tmp_path):
    """Issue 29.7: dev articles with words the training inputs never had tokenize into more pieces for the
    pruned student, so its window ends earlier than the teacher's; the dev KL is over the words both see."""
    torch.manual_seed(1)
    teacher = ExtractivePolicy.from_encoder(str(tiny_encoder), hint_words=3, max_input_tokens=24)
    torch.nn.init.normal_(teacher.head.weight, std=1.0)
    teacher.save(tmp_path / "teacher")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text((synth_dir / "train.jsonl").read_text())
    odd = "Zanzibarian quokkas befriended xylophonists near Qaqortoq while " * 3
    (data / "dev.jsonl").write_text(
        "".join(
            json.dumps({"article": odd + r["article"], "highlights": r["highlights"]}) + "\n"
            for r in map(json.loads, (synth_dir / "dev.jsonl").read_text().splitlines())
        )
    )
    r = runner.invoke(
        app,
        [
            "distill",
            "--teacher",
            str(tmp_path / "teacher"),
            "--data",
            str(data),
            "--output-dir",
            str(tmp_path / "student"),
            "--student",
            "layers:1",
            "--prune-vocab",
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--dev-limit",
            "4",
        ],
    )
    assert r.exit_code == 0, r.output
    result = _strict_json(tmp_path / "student" / "result.json")
    for key in ("dev/kl_teacher_student_before", "dev/kl_teacher_student_after"):
        assert isinstance(result[key], float) and result[key] >= 0, result


def test_dev_kl_nobody_can_compare_is_missing_with_its_reason():
    import math

    from dsp.train.distill import _dev_kl, shared_candidates

    assert shared_candidates(["a", "b", "c"], ["c", "a"]) == ([0, 2], [1, 0])
    out = _dev_kl(math.nan, 0.25)
    assert out["dev/kl_teacher_student_before"] is None and out["dev/kl_teacher_student_after"] == 0.25
    assert "both the teacher and the student see" in out["dev/kl_missing"]
