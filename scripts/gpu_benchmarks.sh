#!/usr/bin/env bash
# The attention benchmark on a CUDA machine, in one go: the measurement the CPU results cannot stand in for.
#
#   bash scripts/gpu_benchmarks.sh [RESULTS_DIR]
#
# Runs from the repository root without installing hf_tinylm (it goes on PYTHONPATH). The python3 there needs
# torch with CUDA and transformers >= 5.24; wheels placed in .whl/ (e.g. `pip download --no-deps transformers==5.24.0
# -d .whl`) are installed into a scratch folder first, for machines that cannot reach a package index.
# Writes the float32 section into benchmarks/BENCHMARKS.md and copies it, with both runs' output, to RESULTS_DIR.
set -euo pipefail
results="${1:-gpu_results}"
mkdir -p "$results"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/tinylm_site .whl/*.whl
    export PYTHONPATH=/tmp/tinylm_site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
# The setting (float32, batch-1 decoding where launches dominate), then a GPU-sized bfloat16 one.
python3 benchmarks/bench_attention.py --device cuda --reps 15 2>&1 | tee "$results/bench_attention_fp32.txt"
python3 benchmarks/bench_attention.py --device cuda --dtype bfloat16 --hidden_size 1024 --layers 8 --heads 16 \
    --kv_heads 4 --vocab_size 32000 --batch_size 16 --seq_len 1024 --reps 10 --no_write 2>&1 \
    | tee "$results/bench_attention_bf16.txt"
cp benchmarks/BENCHMARKS.md "$results/"
