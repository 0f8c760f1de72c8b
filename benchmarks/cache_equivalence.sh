#!/usr/bin/env bash
# Stage 1 from the teacher cache against stage 1 with the teacher online: same seed, same batches, same
# number of steps (d96 x 6 student, demo corpus, the demo's stage-1 schedule), then every run's
# stage-1 losses on the dev split with the teacher online (benchmarks/stage1_dev_losses.py).
#
#   bash benchmarks/cache_equivalence.sh            # ~15 min on 2 CPU cores; STEPS=150 OUT=runs/cache_equivalence
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CORPUS=data/corpus/demo
OUT=${OUT:-runs/cache_equivalence}
STEPS=${STEPS:-150}
common=(model.train_ds.manifest_filepath=$CORPUS/train_manifest.json
        model.validation_ds.manifest_filepath=$CORPUS/dev_manifest.json
        seed=1 trainer.max_steps=$STEPS trainer.val_check_interval=50
        model.optim.sched.warmup_steps=150 model.optim.lr=0.6)
nemo-encrl corpus --profile demo
nemo-encrl cache-teacher "${common[@]}" model.teacher.cache=$OUT/cache_fp16
nemo-encrl cache-teacher "${common[@]}" model.teacher.cache=$OUT/cache_topk16 teacher_cache.logprobs=topk
for run in online:null cache_fp16:$OUT/cache_fp16 cache_topk16:$OUT/cache_topk16; do
  name=${run%%:*}
  nemo-encrl distill "${common[@]}" model.teacher.cache=${run#*:} exp_manager.exp_dir=$OUT/$name \
    output_nemo=$OUT/$name/stage1.nemo learning_curve=$OUT/$name/curve.json
done
python benchmarks/stage1_dev_losses.py $CORPUS/dev_manifest.json $OUT/{online,cache_fp16,cache_topk16}/stage1.nemo \
  --json $OUT/dev_losses.json
