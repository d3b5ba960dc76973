"""dsp distill"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from dsp.cli import app
from dsp.cli.common import (DataSource, Device, InputField, Resume, Seed, TargetField, TaskName, handle_errors,
                            resolve_task)


@app.command()
@handle_errors
def distill(
    teacher: Annotated[str, typer.Option(help="Teacher policy: a `dsp sft` or `dsp rl` run folder.")],
    output_dir: Annotated[Path, typer.Option(help="The student's run folder (as `dsp sft` writes it).")],
    student: Annotated[str, typer.Option(help="layers:N (the teacher cut to its first N layers) or a model name/path.")] = "layers:3",
    task: TaskName = "cnndm",
    data: DataSource = None,
    prune_vocab: Annotated[bool, typer.Option(help="Extractive: keep only the embedding rows of tokens the training inputs use (a smaller student).")] = False,
    unlabelled: Annotated[Optional[str], typer.Option(help="Extra inputs (file or folder) for the teacher to label.")] = None,
    unlabelled_limit: Annotated[Optional[int], typer.Option(help="Use only the first N extra inputs.")] = None,
    token_level: Annotated[bool, typer.Option(help="Add KL(teacher || student): over input words (extractive), over next tokens when seq2seq tokenizers match.")] = True,
    temperature: Annotated[float, typer.Option(help="Softening of both distributions in the KL term.")] = 2.0,
    kl_weight: Annotated[float, typer.Option(help="Weight of the KL term.")] = 1.0,
    epochs: Annotated[int, typer.Option(help="Passes over the (teacher-labelled) training inputs.")] = 3,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after N steps (overrides --epochs).")] = None,
    batch_size: Annotated[int, typer.Option(help="Inputs per step.")] = 8,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (default: the policy type's).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N training inputs.")] = None,
    dev_limit: Annotated[int, typer.Option(help="Dev inputs for hint F1 and the teacher-student KL.")] = 50,
    input_field: InputField = None,
    target_field: TargetField = None,
    device: Device = "auto",
    seed: Seed = 0,
    resume: Resume = False,
) -> None:
    """Distill a teacher policy into a smaller student (sequence level, plus token level on a shared tokenizer).

    Example: dsp distill --teacher runs/rl --data ../shared/data/cnndm --output-dir runs/student --student layers:3
    """
    from dsp.train.distill import DistillConfig, run_distill

    _, data, input_field, target_field, data_config = resolve_task(task, data, input_field, target_field)
    cfg = DistillConfig(teacher=teacher, data=data, output_dir=str(output_dir), student=student, prune_vocab=prune_vocab, unlabelled=unlabelled,
                        unlabelled_limit=unlabelled_limit, token_level=token_level, temperature=temperature,
                        kl_weight=kl_weight, data_config=data_config, input_field=input_field, target_field=target_field,
                        limit=limit, dev_limit=dev_limit, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                        device=device, seed=seed, resume=resume)
    typer.echo(json.dumps(run_distill(cfg), indent=2))
    typer.echo(f"student saved to {output_dir / 'policy'}", err=True)
