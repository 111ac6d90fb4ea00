#!/usr/bin/env bash
# Trains every reference model of issue 6, two runs at a time (one torch thread each, so a pair shares two cores
# evenly), then writes model_cards/README.md. Logs go to outputs/reference/logs/. About an hour on two CPU cores.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
LOGS=outputs/reference/logs
mkdir -p "$LOGS"
pair() {
  for name in "$@"; do
    OMP_NUM_THREADS=1 "$PY" benchmarks/reference_models.py run "$name" > "$LOGS/$name.log" 2>&1 &
  done
  wait
}
if [ "${SKIP_LM_ATTENTION:-0}" != 1 ]; then
  OMP_NUM_THREADS=1 "$PY" benchmarks/reference_models.py run lm-attention-shakespeare > "$LOGS/lm-attention-shakespeare.log" 2>&1
fi
pair lm-lstm-shakespeare lm-gru-shakespeare
pair qa-attention-babi qa-lstm-babi
pair sum-attention-scitldr sum-lstm-scitldr
pair qa-attention-squad qa-lstm-squad
pair mt-attention-multi30k mt-lstm-multi30k
"$PY" benchmarks/reference_models.py report
