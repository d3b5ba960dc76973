#!/usr/bin/env bash
# The CNN/DM ladder of issue 2: no hint / TF-IDF / SFT policy / oracle hints with the embedded LLM.
# Usage: bench/cnndm_ladder.sh [OUT]   (env: DATA=../shared/data/cnndm N=100 EPOCHS=5)
# Uses a fresh LLM cache inside OUT, so the eval's wall time is uncached calls.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/bench-cnndm}
DATA=${DATA:-../shared/data/cnndm}
N=${N:-100}
EPOCHS=${EPOCHS:-5}
DSP=${DSP:-.venv/bin/dsp}
mkdir -p "$OUT"
t0=$(date +%s)
[ -d "$OUT/sft/policy" ] || $DSP sft --data "$DATA" --output-dir "$OUT/sft" --policy scratch --epochs "$EPOCHS" --eval-every 100
t1=$(date +%s)
$DSP eval --data "$DATA" --policy "$OUT/sft" --output-dir "$OUT/eval" --limit "$N" \
  --conditions none,tfidf,policy,oracle --cache "$OUT/llm-cache.sqlite"
t2=$(date +%s)
echo "sft_seconds=$((t1 - t0)) eval_seconds=$((t2 - t1)) machine=$(nproc)cores" | tee "$OUT/timing.txt"
