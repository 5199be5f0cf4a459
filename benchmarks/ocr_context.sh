#!/bin/bash
# The context channel on the synthetic OCR variant (issue 30): text-only against text + OCR context, seed 1, at the
# quickstart's size (1200/200/200). Usage: benchmarks/ocr_context.sh OUT   (about 6 minutes on 2 CPU cores)
set -euo pipefail
out=${1:?usage: benchmarks/ocr_context.sh OUT}
mkdir -p "$out" && cd "$out"
mmlabel data synth synth --ocr-cue --train 1200 --dev 200 --test 200
mmlabel data describe quickstart-text-only --set data.root=synth --describer ocr --out synth/ocr.jsonl
mmlabel train quickstart-text-only --set data.root=synth --set train.seed=1 --out text-only --json > text-only.json
mmlabel train quickstart-text-only --set data.root=synth --set train.seed=1 \
    --set 'data.context={path = "ocr.jsonl", key = "image"}' --out context --json > context.json
python - <<'PY'
import json
for name in ("text-only", "context"):
    figures = json.load(open(f"{name}.json"))
    print(f"{name}: dev F1 {figures['dev']['f1']:.1f}, test F1 {figures['test']['f1']:.1f}")
PY
