#!/usr/bin/env bash
# Issue 7 rows: a student distilled from the RL teacher, the same student trained by SFT alone, and
# the teacher, on the first N CNN/DM dev articles with the embedded LLM (Gemma 3 270M, 1-shot).
# Usage: bench/distill_cnndm.sh OUT TEACHER_RUN     (env: DATA N LAYERS EPOCHS SEED_CACHE)
# The student is the first LAYERS layers of the encoder. The distilled one starts from the teacher's
# layers and head; the SFT-only one from the pretrained encoder's layers and a fresh head.
# SEED_CACHE: an LLM cache holding the teacher's eval (bench/extractive_ladder.sh), so that the
# no-hint, oracle and teacher rows cost no calls.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/distill_cnndm.sh OUT TEACHER_RUN}
TEACHER=${2:?usage: bench/distill_cnndm.sh OUT TEACHER_RUN}
DATA=${DATA:-../shared/data/cnndm}
N=${N:-100}
LAYERS=${LAYERS:-3}
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
  --data "$DATA" --output-dir "$OUT/student-distill" --epochs "$EPOCHS" $( [ -d "$OUT/student-distill/checkpoint" ] && echo --resume )
if [ ! -d "$OUT/encoder-l$LAYERS" ]; then
  $PY - "$OUT/encoder-l$LAYERS" "$LAYERS" <<'PY'
import sys
from transformers import AutoModel, AutoTokenizer
from dsp.policy.extractive import default_encoder_path
out, n = sys.argv[1], int(sys.argv[2])
model, tok = AutoModel.from_pretrained(default_encoder_path()), AutoTokenizer.from_pretrained(default_encoder_path())
model.encoder.layer = model.encoder.layer[:n]
model.config.num_hidden_layers = n
model.save_pretrained(out)
tok.save_pretrained(out)
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
$PY bench/policy_size_speed.py "$TEACHER" "$OUT/student-distill" "$OUT/student-sft" --data "$DATA" | tee "$OUT/size_speed.md"
echo "machine=$(nproc)cores" >> "$OUT/timing.txt"
