"""The one interface the trainers, `dsp eval` and `dsp hint` see."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol, Sequence, runtime_checkable

from dsp.errors import DSPError
from dsp.policy.folder import MARKER

if TYPE_CHECKING:
    import torch


class HintPolicy(Protocol):
    kind: str

    def generate(self, inputs: Sequence[str], *, batch_size: int = 16) -> list[str]:
        """One hint per input (deterministic: greedy or beam search)."""
        ...

    def save(self, path: str | Path) -> None: ...


@runtime_checkable
class TrainablePolicy(HintPolicy, Protocol):
    """What SFT, RL and distillation need beyond writing hints (the extractive and seq2seq policies).

    Shapes: N rollouts, T action steps. An action is a picked candidate (extractive) or a token (seq2seq).
    """

    device: str
    temperature: float
    """Divides the logits when sampling and when taking log-probabilities (RL); greedy hints ignore it."""

    def loss(self, inputs: Sequence[str], hints: Sequence[str]) -> torch.Tensor:
        """SFT's loss of writing `hints` for `inputs` (a scalar)."""
        ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def param_groups(self, lr: float) -> list[dict]:
        """The optimizer's parameter groups (only parameters that require grad)."""
        ...

    def train(self, mode: bool = True) -> None: ...

    @property
    def hidden_size(self) -> int:
        """Width of the state `action_logprobs` returns (a value head reads it)."""
        ...

    def sample_actions(
        self, inputs: Sequence[str], num_samples: int, reset_hints: Sequence[str | None] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
        """(actions (N, T), valid (N, T), generated (N, T), hints (N,)) for num_samples per input."""
        ...

    def action_logprobs(
        self, inputs: Sequence[str], actions: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logprob (N, T), entropy (N, T), state (N, T, H)) of the given actions, with gradients."""
        ...


def write_marker(path: Path, kind: str, **extra) -> None:
    (path / MARKER).write_text(json.dumps({"kind": kind, **extra}, indent=2) + "\n", encoding="utf-8")


# `dsp sft`'s defaults (--policy-type auto: the extractive policy on the packaged all-MiniLM-L6-v2 offline,
# Flan-T5 where the hub is reachable): what a user with no policy yet should run.
TRAIN_ONE = "train one with the defaults: `dsp sft --data DATA --output-dir runs/sft`, then pass --policy runs/sft"
_HUB_ID = re.compile(r"^(?![.-])[\w.-]{1,96}(?<![.-])(/(?![.-])[\w.-]{1,96}(?<![.-]))?$")


def no_policy_at(name: str, why: str) -> DSPError:
    return DSPError(f"no policy found at '{name}' ({why}); {TRAIN_ONE}")


def looks_like_hub_id(name: str) -> bool:
    """'name' or 'namespace/name' as the hub spells them; a path with more parts, ./ or ~ is a folder."""
    return bool(_HUB_ID.match(name)) and "--" not in name and ".." not in name
