#!/usr/bin/env bash
# Which learning-rate schedule should stage 2 use when its budget is only a few hundred steps?
# One stage-1 student (medium bench size, d80 x 6, on the demo corpus), then the same stage 2 twice,
# step-bounded so that nothing else running on the machine changes the comparison:
#   A: conf/finetune/ctc_finetune.yaml as it is (Noam, 500 warm-up steps, peak 5.0e-3 at d80)
#   B: a finetuning schedule (Noam, 100 warm-up steps, lr 0.22: peak 2.5e-3)
# Prints the dev WER after every epoch of both. Usage: bash benchmarks/finetune_schedule.sh [TEACHER] [OUT]
set -euo pipefail
teacher=${1:-models/demo_teacher.nemo}
out=${2:-runs/finetune_schedule}
size=(model.encoder.d_model=80 model.encoder.n_layers=6 model.encoder.n_heads=4)

[ -f "$out/stage1.nemo" ] || nemo-encrl distill model.teacher.path="$teacher" "${size[@]}" \
    trainer.max_steps=450 model.optim.lr=0.55 model.optim.sched.warmup_steps=150 \
    exp_manager.exp_dir="$out/stage1" output_nemo="$out/stage1.nemo" learning_curve="$out/stage1_curve.json"

run() {  # name, extra overrides...
    local name=$1; shift
    [ -f "$out/$name/curve.json" ] && [ -n "$(ls "$out/$name"/*.nemo 2>/dev/null)" ] && return
    nemo-encrl finetune init.from=stage1 init.stage1="$out/stage1.nemo" "init.depths=[6]" init.decoder=stage1 \
        trainer.max_steps=500 trainer.max_epochs=-1 output_dir="$out/$name" exp_manager.exp_dir="$out/$name" \
        learning_curve="$out/$name/curve.json" "$@"
}
run A
run B model.optim.lr=0.22 model.optim.sched.warmup_steps=100

python - "$out" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for name in ("A", "B"):
    curve = json.loads((out / name / "curve.json").read_text())
    print(name, " ".join(f"{100 * p['val_wer']:.1f}" for p in curve if p.get("val_wer") is not None))
EOF
