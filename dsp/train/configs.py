"""The settings of `dsp sft`, `dsp rl` and `dsp distill`: one dataclass each, declared once.

Each field has a one-line docstring under it; `dsp.cli.config` turns the fields into the commands'
flags (the docstring is the help) and loads them from `--config` files. Cross-field rules live in
`__post_init__`, with a message that says what to change. This module imports no torch, so the CLI
can build every command's options without loading a model library.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from dsp.errors import DSPError
from dsp.policy.choose import POLICY_TYPES

MIXED_PRECISION = ("no", "bf16", "fp16")


def check_mixed_precision(value: str | None) -> None:
    if value is not None and value not in MIXED_PRECISION:
        raise DSPError(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)}, not '{value}'")


@dataclass(kw_only=True)
class RunFolder:
    """What every trainer's run shares: its data, its run folder, the device, the seed."""

    data: str
    """Local file, folder of split files (train.jsonl, dev.jsonl) or hub dataset id."""
    output_dir: str
    """Run folder: config, log.jsonl, checkpoint/, and the final policy/."""
    data_config: str | None = None
    """Hub dataset config name (e.g. 3.0.0 for abisee/cnn_dailymail)."""
    input_field: str = "article"
    """Field holding the input text."""
    target_field: str = "highlights"
    """Field holding the reference output (SFT's pseudo-labels are made from it; distillation needs none)."""
    limit: int | None = None
    """Train on the first N examples only."""
    device: str = "auto"
    """cpu, cuda, cuda:1, ...; auto takes a GPU when there is one (under `accelerate launch`, each process takes its own)."""
    mixed_precision: str | None = None
    """no, bf16 or fp16 (GPU only), passed to accelerate; None: the launcher's setting (`accelerate launch
    --mixed_precision`), no without one."""
    seed: int = 0
    """Seed for initialisation and data order."""
    resume: bool = False
    """Continue from the run folder's checkpoint."""

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit <= 0:
            raise DSPError(f"--limit must be positive, not {self.limit}")
        check_mixed_precision(self.mixed_precision)


@dataclass(kw_only=True)
class TrainingRun(RunFolder):
    """What the supervised trainers (sft, distill) share besides the run folder: the optimisation loop."""

    dev_limit: int = 50
    """Dev examples used for loss and hint F1."""
    epochs: int = 3
    """Passes over the training examples."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides epochs)."""
    batch_size: int = 8
    """Examples per optimizer step."""
    lr: float | None = None
    """Peak learning rate (AdamW), reached after warmup and decayed linearly to 0; None: 5e-5 extractive, 3e-4 seq2seq, 5e-4 scratch."""
    eval_every: int = 50
    """Steps between dev evaluations."""
    save_every: int = 50
    """Steps between checkpoints."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("epochs", "batch_size", "eval_every", "save_every", "dev_limit"):
            if getattr(self, name) <= 0:
                raise DSPError(f"--{name.replace('_', '-')} must be positive, not {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise DSPError(f"--max-steps must be positive, not {self.max_steps}")
        if self.lr is not None and not self.lr > 0:
            raise DSPError(f"--lr must be positive, not {self.lr}")


@dataclass(kw_only=True)
class SFTConfig(TrainingRun):
    """Settings of one `dsp sft` run."""

    policy: str | None = None
    """Model name or path (an encoder for extractive, a seq2seq LM, or `scratch`); None: the type's default."""
    policy_type: str = "auto"
    """extractive, seq2seq, or auto (seq2seq Flan-T5 when the hub is reachable, else the packaged MiniLM encoder)."""
    labels: str = "reference"
    """reference: pseudo-labels found in the reference outputs; llm: the LLM writes them; teacher: `dsp distill`'s teacher does."""
    label_template: str = "labelling/keywords"
    """Labelling prompt for --labels llm: a packaged template name or a .txt path."""
    hint_words: int | None = None
    """Extractive: words per hint; None picks the count with the best dev hint F1 after training."""
    scratch_size: str = "tiny"
    """Size of the `scratch` T5: tiny (~0.7M parameters) or small (~15M)."""
    train_split: str = "train"
    """Split (or file stem inside a folder) to train on; several joined by commas, each with an optional [start:end] of its records: train,validation[200:]."""
    dev_split: str | None = "dev"
    """Split for dev loss and hint F1; None holds out 10% of the training examples."""
    warmup_ratio: float = 0.05
    """Share of the steps spent warming the learning rate up."""
    grad_clip: float = 1.0
    """Gradient norm clip."""
    max_input_tokens: int | None = None
    """Policy input length; longer inputs are cut (with a warning). None: 512 extractive, 256 seq2seq."""
    freeze_layers: int = 0
    """Extractive: keep the encoder's embeddings and first N layers frozen (cheaper steps; 0 trains all)."""
    max_hint_tokens: int = 48
    """Longest hint the policy writes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("max_input_tokens", "max_hint_tokens", "hint_words"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise DSPError(f"--{name.replace('_', '-')} must be positive, not {getattr(self, name)}")
        if self.freeze_layers < 0:
            raise DSPError(f"--freeze-layers must be 0 or more, not {self.freeze_layers}")
        if self.labels not in ("reference", "llm", "teacher"):
            raise DSPError(f"--labels must be 'reference' or 'llm', not '{self.labels}'")
        if self.policy_type not in POLICY_TYPES:
            raise DSPError(f"--policy-type must be one of {', '.join(POLICY_TYPES)}, not '{self.policy_type}'")
        if self.hint_words is not None and self.policy_type == "seq2seq":
            raise DSPError("--hint-words applies to the extractive policy; drop it or use --policy-type extractive")


@dataclass(kw_only=True)
class RLConfig(RunFolder):
    """Settings of one `dsp rl` run."""

    output_dir: str
    """Run folder: config, log.jsonl, tb/, checkpoint/, curves.png, and the final policy/."""
    policy: str
    """The starting policy: a `dsp sft` run folder or a policy folder. It is also the frozen KL reference."""
    train_split: str = "train"
    """Split whose inputs are rolled out."""
    dev_split: str = "dev"
    """Split for periodic dev evaluation (greedy hints, task metric)."""
    target_field: str = "highlights"
    """Field holding the reference output (the reward compares against it)."""
    limit: int | None = None
    """Roll out only the first N training inputs."""
    shots: int = 1
    """Few-shot examples in each LLM prompt, the first of `shots_split` that are not dev examples (left out of the rollouts)."""
    shots_split: str = "train"
    """Split the few-shot examples come from."""
    llm_samples: int = 1
    """LLM answers per hint; the reward is their mean score (more than 1 needs --llm-temperature > 0)."""
    llm_temperature: float = 0.0
    """LLM sampling temperature for rewards (0: greedy, and repeated hints are free from the cache)."""
    baseline: str = "none"
    """none, or no_hint: subtract the input's no-hint score (one cached call per input)."""
    algo: str = "grpo"
    """ppo (value head, GAE, KL-shaped reward), grpo (group mean/std baseline), rloo (leave-one-out baseline), best (learn only each group's top-scoring hint) or remax (baseline: the reward of the input's greedy hint, one more LLM call per input)."""
    iterations: int = 25
    """Rollout-score-update iterations."""
    batch_size: int = 4
    """Inputs per iteration."""
    samples_per_input: int = 4
    """Hints sampled per input (the group of GRPO / RLOO); rollouts per iteration = batch_size x this."""
    update_epochs: int = 2
    """Passes over one iteration's rollouts."""
    minibatch_size: int = 8
    """Rollouts per gradient step per process (the step averages the processes' gradients: B x processes rollouts)."""
    lr: float = 2e-5
    """Learning rate (AdamW); see `lr_schedule`."""
    lr_schedule: str = "linear"
    """linear: decayed to 0 over the iterations; constant: held (for runs stopped by a call cap, not an iteration count)."""
    clip: float = 0.2
    """PPO ratio clip."""
    vf_coef: float = 0.5
    """Weight of the value loss (ppo)."""
    vf_clip: float | None = 0.2
    """Value clip around the old values (ppo); None turns it off."""
    whiten_rewards: bool = True
    """PPO: standardise each iteration's rewards before KL shaping. Raw ROUGE (0-100) would make the
    value loss thousands of times the policy loss and, through the one gradient clip, shrink the policy's step."""
    gamma: float = 1.0
    """Discount over hint steps (ppo)."""
    lam: float = 0.95
    """GAE lambda (ppo)."""
    hint_hit_coef: float = 0.0
    """The DSP paper's reward shaping: add this x (+1 per hint phrase found in the reference, -0.25 per phrase not)."""
    kl_coef: float = 0.05
    """KL weight: a per-step reward penalty (ppo) or a loss term (grpo, rloo)."""
    kl_target: float | None = None
    """Adaptive KL controller: steer the coefficient so the per-hint KL tracks this; None keeps it fixed."""
    target_kl: float | None = 0.1
    """Stop an iteration's epochs early when the approximate KL to the rollout policy exceeds 1.5x this."""
    reset_prob: float = 0.0
    """DR-PO dataset reset: share of rollouts that start from a random prefix of the pseudo-label hint."""
    overlap: bool = True
    """Start the LLM calls as soon as the hints are sampled, while the log-probabilities are taken."""
    policy_temperature: float = 1.0
    """Policy sampling temperature for rollouts; the log-probabilities use it too, and greedy eval hints ignore it.
    Below 1 the rollouts stay nearer the greedy hint that eval and `dsp hint` write."""
    hint_words: int | None = None
    """Extractive only: words per hint for the rollouts and the trained policy; None keeps the starting policy's."""
    hint_vocab: str | None = None
    """Seq2seq only: `input` restricts hint tokens to the input's own (plus separator and end); None keeps the policy's."""
    ent_coef: float = 0.0
    """Entropy bonus."""
    grad_clip: float = 1.0
    """Gradient norm clip."""
    eval_every: int = 0
    """Iterations between dev evaluations (LLM calls); 0: only before the first and after the last."""
    dev_limit: int = 20
    """Dev examples per evaluation."""
    save_every: int = 5
    """Iterations between checkpoints."""
    seed: int = 0
    """Seed for data order and sampling."""

    def __post_init__(self) -> None:
        from dsp.train.algos import ALGOS  # torch: imported when a run is configured, not when the CLI loads

        super().__post_init__()
        if self.algo not in ALGOS:
            raise DSPError(f"--algo must be one of {', '.join(ALGOS)}, not '{self.algo}'")
        for name in ("iterations", "batch_size", "samples_per_input", "update_epochs", "minibatch_size", "save_every",
                     "dev_limit"):
            if getattr(self, name) <= 0:
                raise DSPError(f"--{name.replace('_', '-')} must be positive, not {getattr(self, name)}")
        if self.eval_every < 0:
            raise DSPError(f"--eval-every must be 0 or more, not {self.eval_every}")
        if self.samples_per_input < ALGOS[self.algo].min_group:
            raise DSPError(f"--algo {self.algo} needs --samples-per-input {ALGOS[self.algo].min_group} or more "
                           "(the other samples of an input are its baseline)")
        if self.lr_schedule not in ("linear", "constant"):
            raise DSPError(f"--lr-schedule must be linear or constant, not '{self.lr_schedule}'")
        if not self.lr > 0 or not 0 < self.clip < 1:
            raise DSPError("--lr must be positive and --clip in (0, 1)")
        if self.llm_samples < 1 or (self.llm_samples > 1 and self.llm_temperature <= 0):
            raise DSPError("--llm-samples above 1 needs --llm-temperature above 0 (greedy answers would all be the same)")
        if self.baseline not in ("none", "no_hint"):
            raise DSPError(f"--baseline must be none or no_hint, not '{self.baseline}'")
        if self.shots < 0:
            raise DSPError(f"--shots must be 0 or more, not {self.shots}")
        if not 0 <= self.reset_prob <= 1:
            raise DSPError(f"--reset-prob must be in [0, 1], not {self.reset_prob}")
        if self.hint_vocab not in (None, "all", "input"):
            raise DSPError(f"--hint-vocab must be 'all' or 'input', not '{self.hint_vocab}'")
        if not self.policy_temperature > 0:
            raise DSPError(f"--policy-temperature must be above 0, not {self.policy_temperature}")
        if self.kl_coef < 0:
            raise DSPError(f"--kl-coef must be 0 or more, not {self.kl_coef}")
        if self.hint_words is not None and self.hint_words < 1:
            raise DSPError(f"--hint-words must be positive, not {self.hint_words}")


@dataclass(kw_only=True)
class DistillConfig(TrainingRun):
    """Settings of one `dsp distill` run."""

    teacher: str
    """The teacher policy: a `dsp sft` or `dsp rl` run folder, or a policy folder."""
    student: str = "layers:3"
    """`layers:N` (the teacher cut to N layers) or a model name or path of the teacher's kind."""
    prune_vocab: bool = False
    """Extractive students: keep only the embedding rows of tokens the training and extra inputs use."""
    unlabelled: str | None = None
    """Extra inputs (a file or folder of split files) for the teacher to label."""
    unlabelled_limit: int | None = None
    """Use the first N extra inputs only."""
    token_level: bool = True
    """Add the KL term: over next tokens when the seq2seq tokenizers match, over input words for extractive."""
    temperature: float = 2.0
    """Softening of both distributions in the KL term."""
    kl_weight: float = 1.0
    """Weight of the KL term next to the sequence-level loss."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.temperature > 0:
            raise DSPError(f"--temperature must be positive, not {self.temperature}")
        if self.kl_weight < 0:
            raise DSPError(f"--kl-weight must be 0 or more, not {self.kl_weight}")
        if self.student.startswith("layers:"):
            n = self.student.split(":", 1)[1]
            if not n.isdigit() or int(n) < 1:
                raise DSPError(f"--student layers:N needs a positive N, not '{self.student}'")

    def sft_config(self) -> SFTConfig:
        names = {f.name for f in fields(SFTConfig)}
        kw = {k: v for k, v in asdict(self).items() if k in names}
        # the teacher writes every label: no references are needed
        return SFTConfig(**kw, labels="teacher", hint_words=None)
