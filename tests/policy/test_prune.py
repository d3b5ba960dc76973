"""Vocabulary pruning of an extractive policy: smaller, and the same on the texts it was pruned for."""

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
    r = runner.invoke(app, ["distill", "--teacher", str(tmp_path / "teacher"), "--data", str(synth_dir), "--output-dir",
                            str(tmp_path / "student"), "--student", "layers:1", "--prune-vocab", "--max-steps", "2",
                            "--batch-size", "4", "--dev-limit", "4"])
    assert r.exit_code == 0, r.output
    student = load_policy(str(tmp_path / "student"))
    assert student.encoder.config.vocab_size < teacher.encoder.config.vocab_size / 4
    assert len(student.generate(["Anna Berg met Omar Haddad in Lisbon."])) == 1
