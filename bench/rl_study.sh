#!/usr/bin/env bash
# Issue 14's study: dev ROUGE of `dsp rl` against LLM calls, from the default `dsp sft` policy, with
# the embedded LLM (Gemma 3 270M, 1-shot CNN/DM). Every step is skipped when its output exists, so
# a killed study re-runs from where it stopped (and the LLM cache makes repeated calls free).
#
# Usage: bench/rl_study.sh OUT PHASE...      PHASE: base probes main all
#   base    default SFT; its eval on the final set (dev 1-100: none, TF-IDF, policy, oracle); its eval on
#           the probe set (dev 101-200); the LLM's score of its hints at several lengths (probe set)
#   probes  each PROBES entry NAME="flags": `dsp rl` from the SFT policy to PROBE_CAP calls (rollouts on
#           the train split, in-run dev on the probe set), then its greedy hints on the probe set
#   main    MAIN_FLAGS to 500, 1,000 and 2,000 calls (one run, resumed at each cap), each budget's
#           policy evaluated on the final set
# Probes choose on dev 101-200; the final table is on dev 1-100, which no choice has seen.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/rl_study.sh OUT PHASE...}
shift
PHASES=${*:-all}
DATA=${DATA:-../shared/data/cnndm}
DSP=${DSP:-.venv/bin/dsp}
PY=${PY:-.venv/bin/python}
PROBE_CAP=${PROBE_CAP:-320}
ITERS=${ITERS:-400}          # above any cap: the call cap, not the iteration count, ends each run
MAIN_FLAGS=${MAIN_FLAGS:-}
BUDGETS=${BUDGETS:-500 1000 2000}
SFT_FLAGS=${SFT_FLAGS:-}                                  # e.g. the demo's faster SFT settings
FINAL_CONDITIONS=${FINAL_CONDITIONS:-none,tfidf,policy,oracle}
BASE_EXTRAS=${BASE_EXTRAS:-1}   # 0: skip the probe-set eval and the hint-length scan (800 calls) when only `main` follows
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"
CACHE="$OUT/llm-cache.sqlite"
LOG="$OUT/study.log"
say() { echo "$(date -u +%FT%TZ) $*" | tee -a "$LOG"; }
want() { [[ " $PHASES " == *" $1 "* || " $PHASES " == *" all "* ]]; }

# The probe set: the train split and dev articles 101-200 (a folder in OUT, never in the project).
PROBE="$OUT/data-probe"
if [ ! -f "$PROBE/dev.jsonl" ]; then
  mkdir -p "$PROBE"
  ln -sf "$(realpath "$DATA/train.jsonl")" "$PROBE/train.jsonl"
  sed -n 101,200p "$DATA/dev.jsonl" > "$PROBE/dev.jsonl"
fi

rl() {  # rl OUTDIR CAP FLAGS...: exit 3 (stopped at the cap) is the plan, not a failure
  local dir=$1 cap=$2
  shift 2
  $DSP rl --data "$PROBE" --policy "$OUT/sft" --output-dir "$dir" --iterations "$ITERS" --max-llm-calls "$cap" \
    --cache "$CACHE" $( [ -d "$dir/checkpoint" ] && echo --resume ) "$@" || [ $? -eq 3 ]
}

if want base; then
  if [ ! -d "$OUT/sft/policy" ]; then
    say "sft (defaults)"
    # shellcheck disable=SC2086
    $DSP sft --data "$DATA" --output-dir "$OUT/sft" $( [ -d "$OUT/sft/checkpoint" ] && echo --resume ) $SFT_FLAGS
  fi
  if [ ! -f "$OUT/eval-sft/summary.json" ]; then
    say "eval sft, final set"
    $DSP eval --data "$DATA" --policy "$OUT/sft" --output-dir "$OUT/eval-sft" --limit 100 \
      --conditions "$FINAL_CONDITIONS" --cache "$CACHE"
  fi
  if [ "$BASE_EXTRAS" = 1 ] && [ ! -f "$OUT/probe-eval-sft/summary.json" ]; then
    say "eval sft, probe set"
    $DSP eval --data "$PROBE" --policy "$OUT/sft" --output-dir "$OUT/probe-eval-sft" --limit 100 \
      --conditions none,policy,oracle --cache "$CACHE"
  fi
  if [ "$BASE_EXTRAS" = 1 ] && [ ! -f "$OUT/hint-length.json" ]; then
    say "hint length by the LLM's score, probe set"
    $PY -m bench.hint_length "$OUT/sft" --data "$PROBE" --limit 100 --lengths 6 8 12 16 24 --cache "$CACHE" \
      --json "$OUT/hint-length.json" | tee "$OUT/hint-length.md"
  fi
fi

if want probes; then
  while IFS='=' read -r name flags; do
    [ -n "$name" ] || continue
    if [ ! -f "$OUT/probe-$name/result.json" ]; then
      say "probe $name: $flags"
      # shellcheck disable=SC2086
      rl "$OUT/probe-$name" "$PROBE_CAP" $flags
    fi
    if [ ! -f "$OUT/probe-eval-$name/summary.json" ]; then
      $DSP eval --data "$PROBE" --policy "$OUT/probe-$name" --output-dir "$OUT/probe-eval-$name" --limit 100 \
        --conditions none,policy --cache "$CACHE"
    fi
    $PY -m bench.paired "$OUT/probe-eval-$name/examples.jsonl:policy" "$OUT/probe-eval-sft/examples.jsonl:policy" \
      | sed "s/^/probe $name vs sft: /" | tee -a "$OUT/probes.txt"
  done <<< "${PROBES:-}"
fi

if want main; then
  spent=0
  for b in $BUDGETS; do
    if [ ! -d "$OUT/main-$b/policy" ]; then
      say "main run to $b calls: $MAIN_FLAGS"
      # shellcheck disable=SC2086
      rl "$OUT/main" $(( b - spent )) $MAIN_FLAGS
      mkdir -p "$OUT/main-$b" && cp -r "$OUT/main/policy" "$OUT/main-$b/policy"
      cp "$OUT/main/result.json" "$OUT/main-$b/result.json"
    fi
    spent=$b
    if [ ! -f "$OUT/eval-main-$b/summary.json" ]; then
      say "eval main at $b calls, final set"
      $DSP eval --data "$DATA" --policy "$OUT/main-$b" --output-dir "$OUT/eval-main-$b" --limit 100 \
        --conditions none,policy,oracle --cache "$CACHE"
    fi
    $PY -m bench.paired "$OUT/eval-main-$b/examples.jsonl:policy" "$OUT/eval-sft/examples.jsonl:policy" \
      | sed "s/^/main at $b calls vs sft: /" | tee -a "$OUT/main.txt"
  done
fi
say "done: $PHASES"
