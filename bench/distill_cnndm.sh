#!/usr/bin/env bash
# Issue 7 rows: a student distilled from the RL teacher, the same student trained by SFT alone, and
# the teacher, on the first N CNN/DM dev articles with the embedded LLM (Gemma 3 270M, 1-shot).
# Usage: bench/distill_cnndm.sh OUT TEACHER_RUN     (env: DATA N LAYERS PRUNE EPOCHS SEED_CACHE)
# The student is the first LAYERS layers of the encoder, with PRUNE=1 its vocabulary cut to the tokens
# of the training articles (--prune-vocab). The distilled one starts from the teacher's layers and
# head; the SFT-only one from the pretrained encoder's layers (pruned the same way) and a fresh head.
# SEED_CACHE: an LLM cache holding the teacher's eval (bench/extractive_ladder.sh), so that the
# no-hint, oracle and teacher rows cost no calls.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/distill_cnndm.sh OUT TEACHER_RUN}
TEACHER=${2:?usage: bench/distill_cnndm.sh OUT TEACHER_RUN}
DATA=${DATA:-../shared/data/cnndm}
N=${N:-100}
LAYERS=${LAYERS:-2}
PRUNE=${PRUNE:-1}
EPOCHS=${EPOCHS:-3}
DSP=${DSP:-.venv/bin/dsp}
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"
CACHE="$OUT/llm-cache.sqlite"
[ -f "$CACHE" ] || { [ -n "${SEED_CACHE:-}" ] && cp "$SEED_CACHE" "$CACHE" || true; }
stamp() { date +%s; }
timed() { local name=$1; shift; local t0; t0=$(stamp); "$@"; echo "${name}_seconds=$(( $(stamp) - t0 ))" >> "$OUT/timing.txt"; }

[ -d "$OUT/student-distill/policy" ] || timed distill $DSP distill --teacher "$TEACHER" --student "layers:$LAYERS" \
  --data "$DATA" --output-dir "$OUT/student-distill" --epochs "$EPOCHS" $( [ "$PRUNE" = 1 ] && echo --prune-vocab ) \
  $( [ -d "$OUT/student-distill/checkpoint" ] && echo --resume )
if [ ! -d "$OUT/encoder-l$LAYERS" ]; then
  $PY - "$OUT/encoder-l$LAYERS" "$LAYERS" "$PRUNE" "$DATA" <<'PY'
import sys
from dsp.data import load_examples
from dsp.policy.extractive import ExtractivePolicy
from dsp.policy.prune import prune_vocab
out, n, prune, data = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
policy = ExtractivePolicy.from_encoder(None)  # the default pretrained encoder
policy.encoder.encoder.layer = policy.encoder.encoder.layer[:n]
policy.encoder.config.num_hidden_layers = n
if prune:  # the training articles' tokens, as --prune-vocab keeps them
    prune_vocab(policy, [e.input for e in load_examples(data, split="train")])
policy.encoder.save_pretrained(out)
policy.tokenizer.save_pretrained(out)
PY
fi
[ -d "$OUT/student-sft/policy" ] || timed student_sft $DSP sft --data "$DATA" --policy "$OUT/encoder-l$LAYERS" \
  --policy-type extractive --output-dir "$OUT/student-sft" --epochs "$EPOCHS" --eval-every 40 \
  $( [ -d "$OUT/student-sft/checkpoint" ] && echo --resume )
for RUN in teacher:"$TEACHER" student-distill:"$OUT/student-distill" student-sft:"$OUT/student-sft"; do
  NAME=${RUN%%:*}; POLICY=${RUN#*:}
  [ -f "$OUT/eval-$NAME/summary.json" ] || timed "eval_$NAME" $DSP eval --data "$DATA" --policy "$POLICY" \
    --output-dir "$OUT/eval-$NAME" --limit "$N" --conditions none,policy,oracle --cache "$CACHE"
done
$PY -m bench.policy_size_speed "$TEACHER" "$OUT/student-distill" "$OUT/student-sft" --data "$DATA" | tee "$OUT/size_speed.md"
echo "machine=$(nproc)cores" >> "$OUT/timing.txt"
