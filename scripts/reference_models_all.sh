#!/usr/bin/env bash
# Trains every reference model of issue 6 (configs/reference/*.yaml), two runs at a time (one torch thread each),
# then writes model_cards/README.md. Budgets are CPU seconds (--max_train_seconds), so the two runs running side by
# side, or other programs, do not change how much each model trains. Each runs with SEEDS seeds (default 3; the
# cards report mean ± std). Logs: outputs/reference/logs/. About four hours on two CPU cores with 3 seeds.
set -u
cd "$(dirname "$0")/.."
export PY=${PYTHON:-.venv/bin/python}
export LOGS=outputs/reference/logs
mkdir -p "$LOGS"
one() {
  OMP_NUM_THREADS=1 "$PY" benchmarks/reference_models.py run "$1" --seeds "${SEEDS:-3}" > "$LOGS/$1.log" 2>&1
  echo "$(date -u +%H:%M:%S) $1 exit $?"
}
export -f one
# Longest first, so the two workers end together.
printf '%s\n' ${RUNS:-lm-attention-shakespeare mt-attention-multi30k lm-lstm-shakespeare lm-gru-shakespeare \
  mt-lstm-multi30k sum-attention-scitldr sum-lstm-scitldr qa-attention-squad qa-lstm-squad \
  qa-attention-babi-qa1 qa-attention-babi-qa2 qa-attention-babi-qa3 qa-lstm-babi-qa1 qa-lstm-babi-qa2 qa-lstm-babi-qa3} | xargs -P 2 -I{} bash -c 'one {}'
"$PY" benchmarks/reference_models.py report
