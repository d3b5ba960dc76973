"""`dsp distill`: a tiny teacher into a tinier student; the student's hints move towards the teacher's."""

import json

import torch
from typer.testing import CliRunner

import dsp.cli.commands  # noqa: F401
from dsp.cli import app
from dsp.data import load_examples
from dsp.policy import load_policy
from dsp.policy.extractive import ExtractivePolicy
from dsp.train.distill import candidate_kl, cut_layers

runner = CliRunner()


def test_cut_layers_keeps_the_first_layers_and_the_head(tiny_encoder):
    teacher = ExtractivePolicy.from_encoder(str(tiny_encoder), hint_words=3)
    student = cut_layers(teacher, 1)
    assert len(student.encoder.encoder.layer) == 1 and len(teacher.encoder.encoder.layer) == 2
    assert student.num_parameters() < teacher.num_parameters()
    assert torch.equal(student.head.weight, teacher.head.weight)


def test_distilled_student_is_closer_to_its_teacher(synth_dir, tiny_encoder, tmp_path):
    torch.manual_seed(1)
    teacher = ExtractivePolicy.from_encoder(str(tiny_encoder), hint_words=3)
    torch.nn.init.normal_(teacher.head.weight, std=1.0)  # a teacher with opinions of its own
    teacher.save(tmp_path / "teacher")
    (tmp_path / "more").mkdir()
    from tests.conftest import synthetic_rows

    (tmp_path / "more" / "train.jsonl").write_text(
        "".join(json.dumps({"article": r["article"]}) + "\n" for r in synthetic_rows(20, 9))
    )
    held_out = [e.input for e in load_examples(synth_dir, split="dev")]
    # a student of its own (another random 2-layer encoder, fresh head): it starts far from the teacher
    from transformers import BertConfig, BertModel

    torch.manual_seed(7)
    BertModel(BertConfig.from_pretrained(tiny_encoder)).save_pretrained(tmp_path / "student-init")
    teacher.tokenizer.save_pretrained(tmp_path / "student-init")
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
            str(tmp_path / "student-init"),
            "--unlabelled",
            str(tmp_path / "more"),
            "--epochs",
            "4",
            "--batch-size",
            "8",
            "--lr",
            "1e-3",
            "--dev-limit",
            "8",
        ],
    )
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout[r.stdout.index("{") :])
    assert json.loads((tmp_path / "student" / "result.json").read_text()) == result  # what was printed is kept
    assert result["token_level"] and result["teacher_labelled_inputs"] == 40 + 8 + 20
    before = result["dev/kl_teacher_student_before"]
    after = candidate_kl(teacher, load_policy(str(tmp_path / "student")), held_out)
    assert after < 0.5 * before, (before, after)
    assert abs(result["dev/kl_teacher_student_after"] - after) < 1e-5


def test_seq2seq_student_learns_the_teachers_tokens(synth_dir, tmp_path):
    from dsp.policy.scratch import build_scratch_policy
    from dsp.train.configs import DistillConfig
    from dsp.train.distill import run_distill
    from tests.conftest import synthetic_rows

    rows = synthetic_rows(40)
    torch.manual_seed(0)
    teacher = build_scratch_policy(
        [r["article"] for r in rows] + [r["highlights"] for r in rows], "tiny", max_input_tokens=48, max_hint_tokens=8
    )
    # a teacher that knows what it wants: sharp next-token distributions (a flat random one's greedy
    # labels say little about its distribution, and fitting them moves a student away from it)
    with torch.no_grad():
        for p in teacher.model.decoder.parameters():
            p.mul_(3.0)
    teacher.save(tmp_path / "t5")
    from dsp.train.distill import token_kl_loss

    inputs = [e.input for e in load_examples(synth_dir, split="dev")]
    teacher.train(False)
    hints = teacher.generate(inputs)
    kl = token_kl_loss(teacher, temperature=1.0, weight=1.0)

    def token_kl(student):
        student.train(False)
        with torch.no_grad():
            return float(kl(student, inputs, hints))

    before = token_kl(cut_layers(teacher, 1))
    result = run_distill(
        DistillConfig(
            teacher=str(tmp_path / "t5"),
            data=str(synth_dir),
            output_dir=str(tmp_path / "s"),
            student="layers:1",
            max_steps=12,
            batch_size=8,
            lr=3e-3,
            dev_limit=8,
        )
    )
    assert result["token_level"] and result["student_parameters"] < result["teacher_parameters"]
    assert result["steps"] == 12
    assert token_kl(load_policy(str(tmp_path / "s"))) < 0.5 * before


def test_layers_student_of_a_bart_teacher(synth_dir, tmp_path):
    """A seq2seq teacher that is not a T5 (BART keeps its layers in .layers, not .block)."""
    from transformers import BartConfig, BartForConditionalGeneration
    from typer.testing import CliRunner

    from dsp.cli import app
    from dsp.policy.scratch import train_tokenizer
    from dsp.policy.seq2seq import Seq2SeqPolicy
    from tests.conftest import synthetic_rows

    rows = synthetic_rows(40)
    tokenizer = train_tokenizer([r["article"] for r in rows] + [r["highlights"] for r in rows], 500)
    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        forced_eos_token_id=None,
    )
    Seq2SeqPolicy(BartForConditionalGeneration(config), tokenizer, max_input_tokens=48, max_hint_tokens=8).save(
        tmp_path / "bart"
    )
    r = CliRunner().invoke(
        app,
        [
            "distill",
            "--teacher",
            str(tmp_path / "bart"),
            "--data",
            str(synth_dir),
            "--output-dir",
            str(tmp_path / "s"),
            "--student",
            "layers:1",
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--dev-limit",
            "2",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    student = load_policy(str(tmp_path / "s"))
    assert len(student.model.get_encoder().layers) == len(student.model.get_decoder().layers) == 1
    assert student.model.config.encoder_layers == student.model.config.decoder_layers == 1
    r = CliRunner().invoke(
        app,
        [
            "distill",
            "--teacher",
            str(tmp_path / "bart"),
            "--data",
            str(synth_dir),
            "--output-dir",
            str(tmp_path / "s2"),
            "--student",
            "layers:2",
            "--max-steps",
            "1",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 2 and "only 2 layers" in r.stderr and r.stderr.count("\n") == 1
