#!/usr/bin/env bash
# Issue 5 rows: no hint, oracle hint and SFT-policy hint on the first N dev items of MultiWOZ
# (dialogue acts) and MultiArith (chain-of-thought triggers), embedded LLM (Gemma 3 270M).
# Usage: bench/task_ladder.sh OUT [dialogue] [arith]     (env: N TRAIN_TURNS ARITH_TRAIN EPOCHS)
# Offline, `--policy-type auto` gives both tasks the T5 from scratch: their hints are not input words.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/task_ladder.sh OUT [dialogue] [arith]}
shift || true
PARTS=${*:-dialogue arith}
N=${N:-100}
EPOCHS=${EPOCHS:-5}
ARITH_TRAIN=${ARITH_TRAIN:-40}   # trigger search: 8 calls per training question
DSP=${DSP:-.venv/bin/dsp}
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"
CACHE="$OUT/llm-cache.sqlite"
stamp() { date +%s; }
timed() { local name=$1; shift; local t0; t0=$(stamp); "$@"; echo "${name}_seconds=$(( $(stamp) - t0 ))" >> "$OUT/timing.txt"; }

for PART in $PARTS; do
  case $PART in
  dialogue)
    [ -d "$OUT/mwoz-sft/policy" ] || timed mwoz_sft $DSP sft --task multiwoz --output-dir "$OUT/mwoz-sft" \
      --epochs "$EPOCHS" --eval-every 200 ${TRAIN_TURNS:+--limit $TRAIN_TURNS} $( [ -d "$OUT/mwoz-sft/checkpoint" ] && echo --resume )
    [ -f "$OUT/mwoz-eval/summary.json" ] || timed mwoz_eval $DSP eval --task multiwoz --policy "$OUT/mwoz-sft" \
      --output-dir "$OUT/mwoz-eval" --limit "$N" --conditions none,policy,oracle --cache "$CACHE"
    ;;
  arith)
    # every trigger on every dev question: the oracle, and the answers any trigger policy will need
    [ -f "$OUT/arith-data/dev.jsonl" ] || timed arith_oracle $PY -m bench.trigger_oracle "$OUT/arith-data" \
      --task multiarith --limit "$N" --cache "$CACHE" | tee "$OUT/arith-oracle.md"
    [ -d "$OUT/arith-sft/policy" ] || timed arith_sft $DSP sft --task multiarith --data "$OUT/arith-data" --labels llm \
      --limit "$ARITH_TRAIN" --output-dir "$OUT/arith-sft" --epochs 20 --batch-size 8 --cache "$CACHE"
    [ -f "$OUT/arith-eval/summary.json" ] || timed arith_eval $DSP eval --task multiarith --data "$OUT/arith-data" \
      --policy "$OUT/arith-sft" --output-dir "$OUT/arith-eval" --limit "$N" --conditions none,policy,oracle --cache "$CACHE"
    ;;
  esac
done
echo "machine=$(nproc)cores" >> "$OUT/timing.txt"
