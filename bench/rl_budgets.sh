#!/usr/bin/env bash
# Issue 26's run: `dsp rl` from one SFT policy to several LLM-call budgets (one run, stopped at each
# budget by --max-llm-calls and resumed), each budget's greedy policy evaluated on the report set and
# paired against the SFT policy. Every step is skipped when its output exists, so a killed run
# re-runs from where it stopped (the shared LLM cache makes repeated calls free).
#
# Usage: bench/rl_budgets.sh OUT NAME [dsp rl flags...]
#   OUT/sft            the starting `dsp sft` run folder (SFT=path to use another)
#   OUT/eval-sft       its eval on dev 1-EVAL_LIMIT (made here if missing, conditions SFT_CONDITIONS)
#   OUT/NAME           the RL run folder (resumed from its checkpoint); OUT/NAME-B/ its policy after B calls; OUT/eval-NAME-B its eval
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

RUN="$OUT/$NAME"
made() {  # LLM calls the run has made up to its last checkpoint (0 before the first)
  local ck
  for ck in "$RUN/checkpoint" "$RUN/checkpoint.old"; do
    if [ -f "$ck/state.json" ]; then
      $PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["llm_calls"])' "$ck/state.json"
      return
    fi
  done
  echo 0
}

for b in $BUDGETS; do
  if [ ! -d "$RUN-$b/policy" ]; then
    have=$(made)
    if [ "$have" = 0 ] && [ -d "$RUN" ]; then
      say "$RUN holds no checkpoint: started afresh (its calls are in the cache)"
      rm -rf "$RUN"
    fi
    if [ "$have" -lt "$b" ]; then
      say "$NAME from $have to $b calls: $*"
      # exit 3 (stopped at the cap) is the plan, not a failure. The cap counts this invocation's calls, so
      # it is what is left to b from the checkpoint: a leg killed and re-run does not pass its budget.
      $DSP rl --data "$DATA" --policy "$SFT" --output-dir "$RUN" --iterations 1000 \
        --max-llm-calls $((b - have)) --lr-schedule constant --dev-split "validation[:200]" --cache "$CACHE" \
        $([ "$have" -gt 0 ] && echo --resume) "$@" || [ $? -eq 3 ]
    fi
    mkdir -p "$RUN-$b"
    cp -r "$RUN/policy" "$RUN/result.json" "$RUN-$b/"
  fi
  if [ ! -f "$OUT/eval-$NAME-$b/summary.json" ]; then
    say "eval $NAME at $b calls on dev 1-$EVAL_LIMIT"
    $DSP eval --data "$DATA" --policy "$OUT/$NAME-$b" --output-dir "$OUT/eval-$NAME-$b" --limit "$EVAL_LIMIT" \
      --conditions policy --cache "$CACHE"
  fi
  $PY -m bench.paired "$OUT/eval-$NAME-$b/examples.jsonl:policy" "$OUT/eval-sft/examples.jsonl:policy" |
    while read -r line; do echo "$NAME at $b calls vs sft: $line"; done | tee -a "$OUT/$NAME.txt"
done
say "done: $NAME"
