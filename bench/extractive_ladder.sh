#!/usr/bin/env bash
# Issue 8/3 ladder rows: extractive SFT, then RL (GRPO and PPO) under one LLM-call cap, each
# evaluated on the first N CNN/DM dev articles with the embedded LLM (Gemma 3 270M, 1-shot).
# Usage: bench/extractive_ladder.sh OUT [ALGOS...]     (env: DATA N CAP ITERS SEED_CACHE)
# SEED_CACHE: an LLM cache from bench/cnndm_ladder.sh, copied in so that the no-hint, TF-IDF and
# oracle rows (already measured there) cost no calls; every policy row's calls are new.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/extractive_ladder.sh OUT [ALGOS...]}
shift || true
ALGOS=${*:-grpo ppo}
DATA=${DATA:-../shared/data/cnndm}
N=${N:-100}
CAP=${CAP:-400}
ITERS=${ITERS:-60}
DSP=${DSP:-.venv/bin/dsp}
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"
CACHE="$OUT/llm-cache.sqlite"
[ -f "$CACHE" ] || { [ -n "${SEED_CACHE:-}" ] && cp "$SEED_CACHE" "$CACHE" || true; }
stamp() { date +%s; }

if [ ! -d "$OUT/sft/policy" ]; then
  t0=$(stamp)
  $DSP sft --data "$DATA" --output-dir "$OUT/sft" --policy-type extractive --epochs 3 --eval-every 40 \
    $( [ -d "$OUT/sft/checkpoint" ] && echo --resume )
  echo "sft_seconds=$(( $(stamp) - t0 ))" >> "$OUT/timing.txt"
fi
if [ ! -f "$OUT/eval-sft/summary.json" ]; then
  t0=$(stamp)
  $DSP eval --data "$DATA" --policy "$OUT/sft" --output-dir "$OUT/eval-sft" --limit "$N" \
    --conditions none,tfidf,policy,oracle --cache "$CACHE"
  echo "eval_sft_seconds=$(( $(stamp) - t0 ))" >> "$OUT/timing.txt"
fi
for ALGO in $ALGOS; do
  if [ ! -f "$OUT/rl-$ALGO/result.json" ]; then
    t0=$(stamp)
    # exit 3 = stopped at the call cap, which is the plan: the cap is the budget
    $DSP rl --data "$DATA" --policy "$OUT/sft" --output-dir "$OUT/rl-$ALGO" --algo "$ALGO" --iterations "$ITERS" \
      --max-llm-calls "$CAP" --cache "$CACHE" $( [ -d "$OUT/rl-$ALGO/checkpoint" ] && echo --resume ) || [ $? -eq 3 ]
    echo "rl_${ALGO}_seconds=$(( $(stamp) - t0 ))" >> "$OUT/timing.txt"
  fi
  if [ ! -f "$OUT/eval-$ALGO/summary.json" ]; then
    t0=$(stamp)
    $DSP eval --data "$DATA" --policy "$OUT/rl-$ALGO" --output-dir "$OUT/eval-$ALGO" --limit "$N" \
      --conditions none,policy,oracle --cache "$CACHE"
    echo "eval_${ALGO}_seconds=$(( $(stamp) - t0 ))" >> "$OUT/timing.txt"
  fi
done
echo "machine=$(nproc)cores" >> "$OUT/timing.txt"
