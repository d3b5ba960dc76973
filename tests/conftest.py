from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def cnndm_dir() -> Path:
    d = SHARED_DATA / "cnndm"
    if not (d / "train.jsonl").exists():
        pytest.skip(f"real CNN/DM data not found at {d} (../shared/data beside the project)")
    return d
