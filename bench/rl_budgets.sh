#!/usr/bin/env bash
# Issue 26's run: `dsp rl` from one SFT policy to several LLM-call budgets (one run, stopped at each
# budget by --max-llm-calls and resumed), each budget's greedy policy evaluated on the report set and
# paired against the SFT policy. Every step is skipped when its output exists, so a killed run
# re-runs from where it stopped (the shared LLM cache makes repeated calls free).
#
# Usage: bench/rl_budgets.sh OUT NAME [dsp rl flags...]
#   OUT/sft            the starting `dsp sft` run folder (SFT=path to use another)
#   OUT/eval-sft       its eval on dev 1-EVAL_LIMIT (made here if missing, conditions SFT_CONDITIONS)
#   OUT/NAME           the RL run folder; OUT/NAME-B/ its policy after B calls; OUT/eval-NAME-B its eval
#   OUT/NAME.txt       each budget's paired difference to SFT (bench/paired.py)
# Rollouts use the train split; the in-run dev evaluation uses validation 1-200 (the choosing set), so
# nothing in the run looks at the dev articles it is reported on.
#
# Example: bench/rl_budgets.sh R remax --algo remax --samples-per-input 8 --batch-size 2 --kl-coef 0.2
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/rl_budgets.sh OUT NAME [dsp rl flags...]}
NAME=${2:?usage: bench/rl_budgets.sh OUT NAME [dsp rl flags...]}
shift 2
DATA=${DATA:-../shared/data/cnndm}
DSP=${DSP:-.venv/bin/dsp}
PY=${PY:-.venv/bin/python}
SFT=${SFT:-$OUT/sft}
BUDGETS=${BUDGETS:-500 1000 2000}
EVAL_LIMIT=${EVAL_LIMIT:-200}
SFT_CONDITIONS=${SFT_CONDITIONS:-none,tfidf,policy,oracle}
CACHE="$OUT/llm-cache.sqlite"
LOG="$OUT/$NAME.log"
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"
say() { echo "$(date -u +%FT%TZ) $*" | tee -a "$LOG"; }

if [ ! -f "$OUT/eval-sft/summary.json" ]; then
  say "eval sft on dev 1-$EVAL_LIMIT: $SFT_CONDITIONS"
  $DSP eval --data "$DATA" --policy "$SFT" --output-dir "$OUT/eval-sft" --limit "$EVAL_LIMIT" \
    --conditions "$SFT_CONDITIONS" --cache "$CACHE"
fi

spent=0
for b in $BUDGETS; do
  if [ ! -d "$OUT/$NAME-$b/policy" ]; then
    say "$NAME to $b calls: $*"
    # exit 3 (stopped at the cap) is the plan, not a failure; the cap counts this leg's calls
    $DSP rl --data "$DATA" --policy "$SFT" --output-dir "$OUT/$NAME" --iterations 1000 \
      --max-llm-calls $((b - spent)) --lr-schedule constant --dev-split "validation[:200]" --cache "$CACHE" \
      $([ -d "$OUT/$NAME/checkpoint" ] && echo --resume) "$@" || [ $? -eq 3 ]
    mkdir -p "$OUT/$NAME-$b"
    cp -r "$OUT/$NAME/policy" "$OUT/$NAME/result.json" "$OUT/$NAME-$b/"
  fi
  spent=$b
  if [ ! -f "$OUT/eval-$NAME-$b/summary.json" ]; then
    say "eval $NAME at $b calls on dev 1-$EVAL_LIMIT"
    $DSP eval --data "$DATA" --policy "$OUT/$NAME-$b" --output-dir "$OUT/eval-$NAME-$b" --limit "$EVAL_LIMIT" \
      --conditions policy --cache "$CACHE"
  fi
  $PY -m bench.paired "$OUT/eval-$NAME-$b/examples.jsonl:policy" "$OUT/eval-sft/examples.jsonl:policy" |
    sed "s/^/$NAME at $b calls vs sft: /" | tee -a "$OUT/$NAME.txt"
done
say "done: $NAME"
