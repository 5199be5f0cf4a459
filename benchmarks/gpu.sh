#!/usr/bin/env bash
# The reference recipe's speed on a CUDA machine, in one command (about 5 minutes on one GPU):
#
#   benchmarks/gpu.sh [OUT] [extra bench options...]        # OUT default: benchmarks/results-<host>-<date>
#
# runs `mmlabel bench train` and `mmlabel bench predict` on recipes/dtca.toml at the paper's sizes (random weights,
# no download): the naive setting (the reference code's choices: fp32, padding to 60, per-tensor AdamW, eager
# attention, its IPOT alignment), the optimised one (bf16 where the hardware has it, the recipe's exact EMD) and
# the optimised one with torch.compile, and for training the optimised step with the sinkhorn alignment too. Each
# writes JSON into OUT, beside the machine's description (machine.json). The same script runs on a CPU for a
# check: `benchmarks/gpu.sh /tmp/check --text-size tiny --set image_encoder.model=vit_tiny_patch16_224 --steps 2
# --rounds 1` (tests/test_bench.py does this).
set -euo pipefail
out=${1:-benchmarks/results-$(hostname)-$(date +%Y%m%d)}
shift || true
mkdir -p "$out"
python - "$out/machine.json" <<'PY'
import json, platform, sys
import torch
cuda = torch.cuda.is_available()
json.dump({"torch": torch.__version__, "python": platform.python_version(), "cpu": platform.processor(),
           "device": torch.cuda.get_device_name() if cuda else "cpu",
           "bf16": bool(cuda and torch.cuda.is_bf16_supported())}, open(sys.argv[1], "w"), indent=1)
PY
mmlabel bench train --recipe dtca --compile --also-alignment sinkhorn --steps "${STEPS:-20}" --rounds "${ROUNDS:-3}" \
  --json "$@" > "$out/bench-train.json"
mmlabel bench predict --recipe dtca --compile --steps "${STEPS:-20}" --rounds "${ROUNDS:-3}" \
  --json "$@" > "$out/bench-predict.json"
echo "wrote $out/machine.json, $out/bench-train.json, $out/bench-predict.json"
