"""The settings of `dsp sft`, `dsp rl` and `dsp distill`: one dataclass each, declared once.

Each field has a one-line docstring under it; `dsp.cli.config` turns the fields into the commands'
flags (the docstring is the help) and loads them from `--config` files. Cross-field rules live in
`__post_init__`, with a message that says what to change. This module imports no torch, so the CLI
can build every command's options without loading a model library.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

from dsp.data import DataSpec
from dsp.errors import DSPError
from dsp.policy.choose import PolicyType
from dsp.settings import above, at_least, check_settings, within

MixedPrecision = Literal["no", "bf16", "fp16"]
AlgoName = Literal["ppo", "grpo", "rloo", "best", "remax"]
"""The RL algorithms of `dsp.train.algos.ALGOS` (a test checks that the two agree)."""


@dataclass(kw_only=True)
class RunFolder(DataSpec):
    """What every trainer's run shares: its data, its run folder, the device, the seed."""

    output_dir: str
    """Run folder: config, log.jsonl, checkpoint/, and the final policy/."""
    limit: int | None = above(None, 0)
    """Train on the first N examples only."""
    device: str = "auto"
    """cpu, cuda, cuda:1, ...; auto takes a GPU when there is one (under `accelerate launch`, each process takes its own)."""
    mixed_precision: MixedPrecision | None = None
    """no, bf16 or fp16 (GPU only), passed to accelerate; None: the launcher's setting (`accelerate launch
    --mixed_precision`), no without one."""
    seed: int = 0
    """Seed for initialisation and data order."""
    resume: bool = False
    """Continue from the run folder's checkpoint."""

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(kw_only=True)
class TrainingRun(RunFolder):
    """What the supervised trainers (sft, distill) share besides the run folder: the optimisation loop."""

    dev_limit: int = above(50, 0)
    """Dev examples used for loss and hint F1."""
    epochs: int = above(3, 0)
    """Passes over the training examples."""
    max_steps: int | None = above(None, 0)
    """Stop after this many optimizer steps (overrides epochs)."""
    batch_size: int = above(8, 0)
    """Examples per optimizer step."""
    lr: float | None = above(None, 0)
    """Peak learning rate (AdamW), reached after warmup and decayed linearly to 0; None: 5e-5 extractive, 3e-4 seq2seq, 5e-4 scratch."""
    eval_every: int = above(50, 0)
    """Steps between dev evaluations."""
    save_every: int = above(50, 0)
    """Steps between checkpoints."""


@dataclass(kw_only=True)
class SFTConfig(TrainingRun):
    """Settings of one `dsp sft` run."""

    policy: str | None = None
    """Model name or path (an encoder for extractive, a seq2seq LM, or `scratch`); None: the type's default."""
    policy_type: PolicyType = "auto"
    """extractive, seq2seq, or auto (seq2seq Flan-T5 when the hub is reachable, else the packaged MiniLM encoder)."""
    labels: Literal["reference", "llm", "teacher"] = "reference"
    """reference: pseudo-labels found in the reference outputs; llm: the LLM writes them; teacher: `dsp distill`'s teacher does."""
    label_template: str = "labelling/keywords"
    """Labelling prompt for --labels llm: a packaged template name or a .txt path."""
    hint_words: int | None = above(None, 0)
    """Extractive: words per hint; None picks the count with the best dev hint F1 after training."""
    scratch_size: Literal["tiny", "small"] = "tiny"
    """Size of the `scratch` T5: tiny (~0.7M parameters) or small (~15M)."""
    train_split: str = "train"
    """Split (or file stem inside a folder) to train on; several joined by commas, each with an optional [start:end] of its records: train,validation[200:]."""
    dev_split: str | None = "dev"
    """Split for dev loss and hint F1; None holds out 10% of the training examples."""
    warmup_ratio: float = 0.05
    """Share of the steps spent warming the learning rate up."""
    grad_clip: float = 1.0
    """Gradient norm clip."""
    max_input_tokens: int | None = above(None, 0)
    """Policy input length; longer inputs are cut (with a warning). None: 512 extractive, 256 seq2seq."""
    freeze_layers: int = at_least(0, 0)
    """Extractive: keep the encoder's embeddings and first N layers frozen (cheaper steps; 0 trains all)."""
    max_hint_tokens: int = above(48, 0)
    """Longest hint the policy writes."""

    def __post_init__(self) -> None:
        super().__post_init__()
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
    limit: int | None = above(None, 0)
    """Roll out only the first N training inputs."""
    shots: int = at_least(1, 0)
    """Few-shot examples in each LLM prompt, the first of `shots_split` that are not dev examples (left out of the rollouts)."""
    shots_split: str = "train"
    """Split the few-shot examples come from."""
    llm_samples: int = at_least(1, 1)
    """LLM answers per hint; the reward is their mean score (more than 1 needs --llm-temperature > 0)."""
    llm_temperature: float = 0.0
    """LLM sampling temperature for rewards (0: greedy, and repeated hints are free from the cache)."""
    baseline: Literal["none", "no_hint"] = "none"
    """none, or no_hint: subtract the input's no-hint score (one cached call per input)."""
    algo: AlgoName = "grpo"
    """ppo (value head, GAE, KL-shaped reward), grpo (group mean/std baseline), rloo (leave-one-out baseline), best (learn only each group's top-scoring hint) or remax (baseline: the reward of the input's greedy hint, one more LLM call per input)."""
    iterations: int = above(25, 0)
    """Rollout-score-update iterations."""
    batch_size: int = above(4, 0)
    """Inputs per iteration."""
    samples_per_input: int = above(4, 0)
    """Hints sampled per input (the group of GRPO / RLOO); rollouts per iteration = batch_size x this."""
    update_epochs: int = above(2, 0)
    """Passes over one iteration's rollouts."""
    minibatch_size: int = above(8, 0)
    """Rollouts per gradient step per process (the step averages the processes' gradients: B x processes rollouts)."""
    lr: float = above(2e-5, 0)
    """Learning rate (AdamW); see `lr_schedule`."""
    lr_schedule: Literal["linear", "constant"] = "linear"
    """linear: decayed to 0 over the iterations; constant: held (for runs stopped by a call cap, not an iteration count)."""
    clip: float = within(0.2, 0, 1, open=True)
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
    kl_coef: float = at_least(0.05, 0)
    """KL weight: a per-step reward penalty (ppo) or a loss term (grpo, rloo)."""
    kl_target: float | None = None
    """Adaptive KL controller: steer the coefficient so the per-hint KL tracks this; None keeps it fixed."""
    target_kl: float | None = 0.1
    """Stop an iteration's epochs early when the approximate KL to the rollout policy exceeds 1.5x this."""
    reset_prob: float = within(0.0, 0, 1)
    """DR-PO dataset reset: share of rollouts that start from a random prefix of the pseudo-label hint."""
    overlap: bool = True
    """Start the LLM calls as soon as the hints are sampled, while the log-probabilities are taken."""
    policy_temperature: float = above(1.0, 0)
    """Policy sampling temperature for rollouts; the log-probabilities use it too, and greedy eval hints ignore it.
    Below 1 the rollouts stay nearer the greedy hint that eval and `dsp hint` write."""
    hint_words: int | None = above(None, 0)
    """Extractive only: words per hint for the rollouts and the trained policy; None keeps the starting policy's."""
    hint_vocab: Literal["all", "input"] | None = None
    """Seq2seq only: `input` restricts hint tokens to the input's own (plus separator and end); None keeps the policy's."""
    ent_coef: float = 0.0
    """Entropy bonus."""
    grad_clip: float = 1.0
    """Gradient norm clip."""
    eval_every: int = at_least(0, 0)
    """Iterations between dev evaluations (LLM calls); 0: only before the first and after the last."""
    dev_limit: int = above(20, 0)
    """Dev examples per evaluation."""
    save_every: int = above(5, 0)
    """Iterations between checkpoints."""
    seed: int = 0
    """Seed for data order and sampling."""

    def __post_init__(self) -> None:
        from dsp.train.algos import ALGOS  # torch: imported when a run is configured, not when the CLI loads

        super().__post_init__()
        if self.samples_per_input < ALGOS[self.algo].min_group:
            raise DSPError(
                f"--algo {self.algo} needs --samples-per-input {ALGOS[self.algo].min_group} or more "
                "(the other samples of an input are its baseline)"
            )
        if self.llm_samples > 1 and self.llm_temperature <= 0:
            raise DSPError(
                "--llm-samples above 1 needs --llm-temperature above 0 (greedy answers would all be the same)"
            )


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
    temperature: float = above(2.0, 0)
    """Softening of both distributions in the KL term."""
    kl_weight: float = at_least(1.0, 0)
    """Weight of the KL term next to the sequence-level loss."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.student.startswith("layers:"):
            n = self.student.split(":", 1)[1]
            if not n.isdigit() or int(n) < 1:
                raise DSPError(f"--student layers:N needs a positive N, not '{self.student}'")

    def sft_config(self) -> SFTConfig:
        names = {f.name for f in fields(SFTConfig)}
        kw = {k: v for k, v in asdict(self).items() if k in names}
        # the teacher writes every label: no references are needed
        return SFTConfig(**kw, labels="teacher", hint_words=None)
