#!/usr/bin/env bash
# One prepared run on a CUDA machine (about 8 minutes on an H100-class GPU):
#   1. the report's full recipe (6,350 steps x 16,384 tokens = 104M tokens) with the trainer,
#      the same global batch as 32 sequences in one micro-batch, bf16, torch.compile;
#   2. that run's best checkpoint evaluated on the whole validation and test splits;
#   3. `h2q bench` on the GPU (matmul limit, the training ladder, eval, tokenization).
# Every step has its own time limit, so one failure still leaves the others' results.
#
#   benchmarks/gpu_check.sh OUT_DIR DATA_DIR
#
# DATA_DIR is a local WikiText folder (wikitext-103-v1/ with the train slice); the recipe
# therefore runs on the slice, not the full 539 MB train split (see the book).
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR DATA_DIR}
data=${2:?usage: gpu_check.sh OUT_DIR DATA_DIR}
export H2Q_DATA_DIR=$data PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
run=${H2Q_GPU_RUN_DIR:-/tmp/h2q-report-gpu}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv \
  >"$out/nvidia-smi.csv" 2>&1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

echo "== 1. the report's recipe"
timeout "${H2Q_TRAIN_LIMIT_S:-270}" python3 -m h2q_lib.cli train --profile report \
  --run-dir "$run" --data-config wikitext-103-v1 --batch-size 32 --grad-accum 1 \
  --compile true --quiet true --ckpt-every 6350
echo "train exit $?"
for f in config.json log.jsonl samples.jsonl summary.json; do
  [ -f "$run/$f" ] && cp "$run/$f" "$out/train-$f"
done

echo "== 2. evaluation of the best checkpoint"
if [ -f "$run/checkpoints/best.pt" ]; then
  timeout "${H2Q_EVAL_LIMIT_S:-90}" python3 benchmarks/eval_speed.py --device cuda \
    --checkpoint "$run/checkpoints/best.pt" --splits validation,test --batch-size 32 \
    --out "$out/eval-cuda.json"
  echo "eval exit $?"
fi

echo "== 3. benchmark"
timeout "${H2Q_BENCH_LIMIT_S:-150}" python3 -m h2q_lib.cli bench --device cuda \
  --out "$out/results-cuda.json"
echo "bench exit $?"
