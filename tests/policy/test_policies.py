import torch

from dsp.policy import TfidfPolicy, load_policy
from dsp.policy.scratch import build_scratch_policy
from tests.conftest import synthetic_rows


def tiny_policy():
    rows = synthetic_rows(30)
    torch.manual_seed(0)
    return build_scratch_policy(
        [r["article"] for r in rows] + [r["highlights"] for r in rows],
        "tiny",
        vocab_size=300,
        max_input_tokens=64,
        max_hint_tokens=12,
    )


def test_sft_step_changes_weights_and_loss_falls():
    policy = tiny_policy()
    inputs = [r["article"] for r in synthetic_rows(4)]
    hints = ["Alice Moreau; Lisbon"] * 4
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}
    opt = torch.optim.AdamW(policy.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = policy.loss(inputs, hints)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    after = policy.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert losses[-1] < 0.7 * losses[0]


def test_save_load_round_trip(tmp_path):
    policy = tiny_policy()
    inputs = [r["article"] for r in synthetic_rows(3)]
    policy.save(tmp_path / "p")
    loaded = load_policy(str(tmp_path / "p"))
    assert loaded.max_input_tokens == 64 and loaded.max_hint_tokens == 12
    assert loaded.generate(inputs) == policy.generate(inputs)
    for k, v in policy.model.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k])


def test_tfidf_picks_rare_lead_words_and_round_trips(tmp_path):
    docs = [
        "The zeppelin landed in Oslo . Nothing else happened .",
        "The car stopped . The car went .",
        "The bus stopped . The bus went .",
    ]
    p = TfidfPolicy.fit(docs, k=2, lead_sentences=1)
    # Equal scores tie-break alphabetically (landed, oslo); output keeps input order and case.
    assert p.generate([docs[0]]) == ["landed; Oslo"]
    # "stopped" is in two documents, "car" in one: only the rarer word makes k=1.
    assert TfidfPolicy.fit(docs, k=1, lead_sentences=1).generate([docs[1]]) == ["car"]
    p.save(tmp_path / "t")
    assert load_policy(str(tmp_path / "t")).generate(docs) == p.generate(docs)


def test_scratch_tokenizer_is_the_same_in_every_process():
    # The Unigram trainer sums in hash-map order, which Rust seeds per process: scores differ in
    # their last bits and can flip a segmentation. Trained in several processes, it must agree.
    import subprocess
    import sys

    code = (
        "from tests.conftest import synthetic_rows; from dsp.policy.scratch import train_tokenizer; "
        "rows = synthetic_rows(40); "
        "print(train_tokenizer([r['article'] for r in rows] + [r['highlights'] for r in rows]).backend_tokenizer.to_str())"
    )
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(4)
    }
    assert len(outs) == 1


def test_seq2seq_separator_comes_from_the_task_and_is_saved(tmp_path):
    """--hint-vocab input keeps the task's separator writable; a space-joined task needs no separator token."""
    from dsp.policy.base import TrainablePolicy
    from dsp.policy.seq2seq import Seq2SeqPolicy

    policy = tiny_policy()
    assert isinstance(policy, TrainablePolicy) and not isinstance(TfidfPolicy({}, 1.0), TrainablePolicy)
    semi = policy.tokenizer(";", add_special_tokens=False)["input_ids"]
    assert policy.separator == "; " and policy.separator_ids == semi
    spaced = Seq2SeqPolicy(policy.model, policy.tokenizer, hint_vocab="input", separator=" ")
    assert spaced.separator_ids == []
    ids = spaced.encode_inputs(["alpha beta"])["input_ids"]
    allowed = spaced.allowed_tokens(ids)
    assert not allowed[0, semi[-1]]  # ";" is not in the input, and this task does not join with it
    spaced.save(tmp_path / "p")
    assert load_policy(str(tmp_path / "p")).separator == " "
    assert policy.param_groups(1e-3)[0]["params"] == [p for p in policy.parameters() if p.requires_grad]
