#!/usr/bin/env bash
# Stage 1 from the teacher cache against stage 1 with the teacher online: same seed, same batches, same
# number of steps (d96 x 6 student, demo corpus, the demo's stage-1 schedule), then every run's
# stage-1 losses on the dev split with the teacher online (benchmarks/stage1_dev_losses.py). A second
# online run with another seed shows how far two online runs drift apart on their own.
#
#   bash benchmarks/cache_equivalence.sh            # ~20 min on 2 CPU cores; STEPS=150 OUT=runs/cache_equivalence
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CORPUS=data/corpus/demo
OUT=${OUT:-runs/cache_equivalence}
STEPS=${STEPS:-150}
common=(model.train_ds.manifest_filepath=$CORPUS/train_manifest.json
        model.validation_ds.manifest_filepath=$CORPUS/dev_manifest.json
        trainer.max_steps=$STEPS trainer.val_check_interval=50
        model.optim.sched.warmup_steps=150 model.optim.lr=0.6)
nemo-encrl corpus --profile demo
nemo-encrl cache-teacher "${common[@]}" model.teacher.cache=$OUT/cache_fp16
nemo-encrl cache-teacher "${common[@]}" model.teacher.cache=$OUT/cache_topk16 teacher_cache.logprobs=topk
# name:seed:cache
for run in online:1:null cache_fp16:1:$OUT/cache_fp16 cache_topk16:1:$OUT/cache_topk16 online_seed2:2:null; do
  IFS=: read -r name seed cache <<< "$run"
  nemo-encrl distill "${common[@]}" seed=$seed model.teacher.cache=$cache exp_manager.exp_dir=$OUT/stage1_$name \
    output_nemo=$OUT/stage1_$name/stage1.nemo learning_curve=$OUT/stage1_$name/curve.json
done
python benchmarks/stage1_dev_losses.py $CORPUS/dev_manifest.json \
  $OUT/stage1_{online,cache_fp16,cache_topk16,online_seed2}/stage1.nemo --json $OUT/dev_losses.json
