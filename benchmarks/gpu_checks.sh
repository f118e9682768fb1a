#!/usr/bin/env bash
# The GPU checks, in one run on a CUDA machine (from the project root, translate installed):
#   1. every plugin trains on the GPU in bf16 (--amp auto) and fp16 (gradient scaler) and its
#      checkpoint runs there (benchmarks/gpu_smoke.py);
#   2. training steps side by side with the reference on the same GPU (the reference in fp32,
#      as its users run it), pix2pix and CycleGAN (benchmarks/train_speed.py --device cuda);
#   3. a distributed launch with more processes than GPUs fails in one line (NCCL needs one
#      GPU per process);
#   4. --compile: compile time and steady step on the GPU;
#   5. issue 41's launch-bound path at batch 1 and 16: --deferred-sync, then CUDA graphs
#      (--compile --compile-mode reduce-overhead), against the reference in one run;
#   6. issue 40's stackgan prompt accuracy at 10000 steps over three seeds, which takes about 25
#      minutes a seed on the 2-core CPU (benchmarks/stackgan_shapes.py --device cuda).
# Each part has its own time limit and the run goes on when one fails; logs go to $OUT.
#   REF=../shared/reference OUT=/tmp/gpu bash benchmarks/gpu_checks.sh
set -u
OUT=${OUT:-/tmp/gpu_checks}
REF=${REF:-../shared/reference}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
part() {  # part NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)"
  local start=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  echo "== $name: rc $rc in $((SECONDS - start)) s"
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
'bf16', torch.cuda.is_bf16_supported(), 'cudnn', torch.backends.cudnn.version())"

part smoke 120 $PY benchmarks/gpu_smoke.py --steps 20
part speed_pix2pix 130 $PY benchmarks/train_speed.py --device cuda --plugin pix2pix \
  --reference --reference-dir "$REF" --variants default fp32 --rounds 2 --steps 30 --warmup 5
part speed_cyclegan 150 $PY benchmarks/train_speed.py --device cuda --plugin cyclegan \
  --reference --reference-dir "$REF" --variants default 6calls fp32 --rounds 2 --steps 20 --warmup 5
mkdir -p "$OUT/ddp_data/train"
$PY -c "from pathlib import Path; from translate.testing import make_paired; \
make_paired(Path('$OUT/ddp_data'))" >/dev/null 2>&1
part ddp_two_on_one_gpu 45 $PY -m translate train pix2pix --data "$OUT/ddp_data" \
  --nproc-per-node 2 --device cuda --max-steps 2 --load-size 32 --crop-size 32 --unet-depth 5 \
  --run-dir "$OUT/ddp_run" --no-progress
part speed_compile 110 $PY benchmarks/train_speed.py --device cuda --plugin pix2pix \
  --variants default compile --steps 30 --warmup 5
for plugin in pix2pix cyclegan; do
  for batch in 1 16; do
    part "graphs_${plugin}_b${batch}" 110 $PY benchmarks/train_speed.py --device cuda \
      --plugin $plugin --reference --reference-dir "$REF" --batch-size $batch \
      --variants default deferred graphs graphs+fp32 --rounds 1 --steps 30 --warmup 10
  done
done
part stackgan_shapes 420 $PY benchmarks/stackgan_shapes.py --device cuda --seeds 0 1 2 \
  --steps 10000 --every 2000
