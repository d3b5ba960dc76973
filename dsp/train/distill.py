"""`dsp distill`: a large hint policy (the teacher) into a smaller one (the student).

Sequence level: the teacher's greedy hints for the training inputs (and for extra unlabelled
inputs) are the student's SFT labels. Token level, when the two share a tokenizer: each step
also pulls the student's distribution towards the teacher's, KL(teacher || student) at a
temperature T, scaled by T^2 (Hinton et al.) - over the candidate words of an input for
extractive policies, over the next hint token (teacher-forced on the teacher's hint) for
seq2seq ones.

A student is a model name or path, or `layers:N`: the teacher cut to its first N layers
(encoder layers for extractive; encoder and decoder blocks for seq2seq), its head kept, the way
DistilBERT starts from its teacher.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from dsp.data import DataSpec, Example
from dsp.errors import DSPError
from dsp.io import write_json_atomic
from dsp.policy.base import TrainablePolicy
from dsp.policy.loading import load_policy
from dsp.train import accel
from dsp.train.configs import DistillConfig
from dsp.train.sft import load_train_dev, run_sft
from dsp.train.state import open_run_folder

log = logging.getLogger(__name__)


def cut_layers(teacher, n: int):
    """A copy of `teacher` with its first n layers (and its head): the student's starting point."""
    student = copy.deepcopy(teacher)
    if teacher.kind == "extractive":
        layers = student.encoder.encoder.layer
        if n >= len(layers):
            raise DSPError(f"--student layers:{n}: the teacher has only {len(layers)} layers")
        student.encoder.encoder.layer = torch.nn.ModuleList(list(layers)[:n])
        student.encoder.config.num_hidden_layers = n
        return student
    model = student.model
    # T5 keeps a stack's layers in `.block`; BART, mBART, Pegasus, Marian and most other seq2seq LMs in `.layers`.
    for stack in (model.get_encoder(), model.get_decoder()):
        attr = next((a for a in ("block", "layers") if isinstance(getattr(stack, a, None), torch.nn.ModuleList)), None)
        if attr is None:
            raise DSPError(
                f"--student layers:{n}: cannot cut a '{model.config.model_type}' teacher (no layer list in "
                "its encoder or decoder); pass a smaller model's name or path as --student"
            )
        layers = getattr(stack, attr)
        if n >= len(layers):
            raise DSPError(
                f"--student layers:{n}: the teacher has only {len(layers)} layers in its "
                f"{'encoder' if stack is model.get_encoder() else 'decoder'}"
            )
        setattr(stack, attr, torch.nn.ModuleList(list(layers)[:n]))
    # the config names its layer counts after the architecture; save_pretrained must write the cut ones
    for key in ("num_layers", "num_decoder_layers", "encoder_layers", "decoder_layers"):
        if key in model.config.to_dict():
            setattr(model.config, key, n)
    return student


def same_tokenizer(a, b) -> bool:
    return a.tokenizer.get_vocab() == b.tokenizer.get_vocab()


def candidate_kl(teacher, student, inputs: Sequence[str], temperature: float = 1.0, batch_size: int = 16) -> float:
    """Mean KL(teacher || student) of the extractive policies' candidate distributions on `inputs`."""
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            chunk = list(inputs[i : i + batch_size])
            for kl in _extractive_kl_terms(teacher, student, chunk, temperature):
                total, n = total + float(kl), n + 1
    return total / n if n else math.nan


def shared_candidates(t_words: list[str], s_words: list[str]) -> tuple[list[int], list[int]]:
    """(teacher indices, student indices) of the candidate words both policies see, in the teacher's order.

    Their windows can differ: a student with a pruned vocabulary splits a word its training inputs never
    had into more pieces, so fewer of a long input's words fit its window."""
    s_index = {w: i for i, w in enumerate(s_words)}
    pairs = [(i, s_index[w]) for i, w in enumerate(t_words) if w in s_index]
    return [i for i, _ in pairs], [j for _, j in pairs]


def _extractive_kl_terms(teacher, student, inputs: list[str], t: float) -> list[torch.Tensor]:
    """KL(teacher || student) per input, both distributions taken over the candidates both see."""
    with torch.no_grad():
        t_scores, t_cands, _ = teacher.scores(inputs)
    s_scores, s_cands, _ = student.scores(inputs)
    terms = []
    for ts, tc, ss, sc in zip(t_scores, t_cands, s_scores, s_cands):
        ti, si = shared_candidates(tc.words, sc.words)
        if not ti:
            continue  # no word in both windows: nothing to compare
        ts, ss = ts[ti].to(ss.device), ss[si]  # (C_shared,)
        terms.append(
            F.kl_div(torch.log_softmax(ss / t, -1), torch.log_softmax(ts / t, -1), log_target=True, reduction="sum")
        )
    return terms


def token_kl_loss(teacher, temperature: float, weight: float):
    """The token-level term: extra_loss(student, inputs, hints) for run_sft."""
    t2 = temperature * temperature

    def extractive(student, inputs, hints):
        terms = _extractive_kl_terms(teacher, student, inputs, temperature)
        return weight * t2 * torch.stack(terms).mean() if terms else torch.zeros((), device=student.device)

    def seq2seq(student, inputs, hints):
        labels = student.tokenizer(
            text_target=list(hints),
            truncation=True,
            max_length=student.max_hint_tokens,
            padding=True,
            return_tensors="pt",
        )["input_ids"].to(student.device)  # (B, T)
        mask = labels != student.tokenizer.pad_token_id
        batch = student.encode_inputs(inputs)
        s_logits = student.model(**batch, labels=labels).logits  # (B, T, V)
        with torch.no_grad():
            t_batch = teacher.encode_inputs(inputs)
            t_logits = teacher.model(**t_batch, labels=labels.to(teacher.device)).logits.to(s_logits.device)
        kl = F.kl_div(
            torch.log_softmax(s_logits / temperature, -1),
            torch.log_softmax(t_logits / temperature, -1),
            log_target=True,
            reduction="none",
        ).sum(-1)  # (B, T)
        return weight * t2 * (kl * mask).sum() / mask.sum().clamp(min=1)

    return extractive if teacher.kind == "extractive" else seq2seq


def _dev_kl(before: float, after: float) -> dict[str, Any]:
    """The dev KL entries of result.json; null, with the reason, where no dev input could be compared."""
    out: dict[str, Any] = {"dev/kl_teacher_student_before": before, "dev/kl_teacher_student_after": after}
    if math.isnan(before) or math.isnan(after):
        out = {k: None if math.isnan(v) else v for k, v in out.items()}
        out["dev/kl_missing"] = "no dev input has a candidate word that both the teacher and the student see"
    return out


LABEL_BATCH = 16  # the teacher's generate batch: labels are the same however the batches are spread over processes


def teacher_labels(acc, teacher, inputs: list[Example]) -> dict[str, str]:
    """{where: the teacher's greedy hint} for every input with one; under `accelerate launch` each
    process labels every world-th batch and the labels are gathered on all of them."""
    batches = [inputs[i : i + LABEL_BATCH] for i in range(0, len(inputs), LABEL_BATCH)]
    mine = [
        (e.where, h)
        for batch in batches[acc.process_index :: acc.num_processes]
        for e, h in zip(batch, teacher.generate([e.input for e in batch], batch_size=LABEL_BATCH))
    ]
    return {where: h for where, h in accel.gather(acc, mine) if h}


def run_distill(cfg: DistillConfig, on_step: Callable[[int, Any], None] | None = None) -> dict[str, Any]:
    """Label with the teacher, train the student (sequence level + optional token level); returns metrics.
    `on_step(step, student)` as in run_sft."""
    acc = accel.make_accelerator(cfg.device, cfg.mixed_precision)
    open_run_folder(cfg, acc, "distill")  # a refused resume or a taken folder, before the teacher labels anything
    device = accel.run_device(acc, cfg.device)
    teacher = load_policy(cfg.teacher, device=device)
    teacher.train(False)
    for p in teacher.parameters():
        p.requires_grad_(False)
    sft_cfg = cfg.sft_config()
    train, dev = load_train_dev(sft_cfg)
    extra = _unlabelled(cfg)
    labels = teacher_labels(acc, teacher, list({e.where: e for e in train + dev + extra}.values()))
    student = None if cfg.resume else _new_student(cfg, teacher, device, [e.input for e in train + extra])
    probe = student or load_policy(f"{cfg.output_dir}/checkpoint/policy", device=device)
    extra_loss = None
    # extractive distributions are over input words, which do not depend on the tokenizer
    if cfg.token_level and cfg.kl_weight > 0 and (teacher.kind == "extractive" or same_tokenizer(teacher, probe)):
        extra_loss = token_kl_loss(teacher, cfg.temperature, cfg.kl_weight)
    main = acc.is_main_process  # the one that reports
    kl_before = candidate_kl(teacher, probe, [e.input for e in dev]) if teacher.kind == "extractive" and main else None

    result = run_sft(
        sft_cfg,
        labels=labels,
        extra_train=extra,
        initial_policy=student,
        extra_loss=extra_loss,
        on_step=on_step,
        accelerator=acc,
        saved_as=("distill", cfg),
    )
    if not main:
        return result
    final = load_policy(cfg.output_dir, device=device)
    result.update(
        {
            "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
            "student_parameters": final.num_parameters(),
            "token_level": extra_loss is not None,
            "teacher_labelled_inputs": len(labels),
        }
    )
    if teacher.kind == "extractive":
        result.update(_dev_kl(kl_before, candidate_kl(teacher, final, [e.input for e in dev])))
    write_json_atomic(Path(cfg.output_dir) / "result.json", result)  # run_sft wrote it without the above
    return result


def _unlabelled(cfg: DistillConfig) -> list[Example]:
    """The extra inputs for the teacher to label (none without --unlabelled), with ids of their own."""
    if not cfg.unlabelled:
        return []
    source = DataSpec(data=cfg.unlabelled, input_field=cfg.input_field, target_field=cfg.target_field)
    extra = source.examples("train", limit=cfg.unlabelled_limit, need_target=False)
    return [Example(f"unlabelled:{e.id}", e.input, "", e.where) for e in extra]


def _new_student(cfg: DistillConfig, teacher: TrainablePolicy, device: str, inputs: list[str]) -> TrainablePolicy:
    """The student to train: the teacher cut to its first layers, or a new policy of its kind; with
    --prune-vocab, cut to the tokens of the training inputs."""
    from dsp.policy.choose import new_policy

    if cfg.student.startswith("layers:"):
        student = cut_layers(teacher, int(cfg.student.split(":", 1)[1]))
        for p in student.parameters():
            p.requires_grad_(True)
    else:
        student = new_policy(
            teacher.kind,
            cfg.student,
            separator=getattr(teacher, "separator", "; "),
            device=device,
            hint_words=getattr(teacher, "hint_words", None),
        )
    if cfg.prune_vocab:
        from dsp.policy.prune import prune_vocab

        before, after = prune_vocab(student, inputs)
        log.warning("student vocabulary pruned to the training inputs' tokens: %d of %d", after, before)
    return student
