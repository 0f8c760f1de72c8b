#!/usr/bin/env bash
# Which stage-1 losses give stage 2 a head start? Step-bounded, so other load on the machine cannot
# change the comparison. A d80 x 6 student on the demo corpus with the shipped teacher:
#   stage 1 for STEPS steps (Noam, 150 warm-up steps, peak 5e-3) with one set of loss weights, then
#   `nemo-encrl finetune` (conf/finetune/ctc_finetune.yaml's schedule) for S2 steps; and the same
#   student from scratch for S2 steps. Prints the dev WER and CTC loss after every stage-2 epoch and
#   the stage-1 student's within-utterance frame variance (benchmarks/frame_spread.py).
# Usage: bash benchmarks/stage1_losses.sh [VARIANT...]   (default: all; STEPS=300 S2=380 OUT=runs/stage1_losses)
set -euo pipefail
teacher=${TEACHER:-models/demo_teacher.nemo}
out=${OUT:-runs/stage1_losses}
steps=${STEPS:-300}
s2=${S2:-380}
size=(model.encoder.d_model=80 model.encoder.n_layers=6 model.encoder.n_heads=4)
declare -A losses=(
    [paper_mse1]="model.loss.mse_logprobs.weight=1.0 model.loss.mse_encoder.weight=0 model.loss.hidden.weight=0"
    [encoder_mse1]="model.loss.mse_logprobs.weight=1.0 model.loss.mse_encoder.weight=1.0 model.loss.hidden.weight=0"
    [encoder_mse]="model.loss.mse_logprobs.weight=0.05 model.loss.mse_encoder.weight=1.0 model.loss.hidden.weight=0"
    [hints_mse1]="model.loss.mse_logprobs.weight=1.0"
    [default]=""
)
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(scratch paper_mse1 encoder_mse1 encoder_mse hints_mse1 default)

finetune() {  # folder, init overrides...
    local dir=$1; shift
    [ -f "$dir/curve.json" ] && [ -n "$(ls "$dir"/*.nemo 2>/dev/null)" ] && return
    nemo-encrl finetune "init.depths=[6]" trainer.max_steps="$s2" trainer.max_epochs=-1 output_dir="$dir" \
        exp_manager.exp_dir="$dir" learning_curve="$dir/curve.json" "$@" > "$dir.log" 2>&1
}
for v in "${variants[@]}"; do
    mkdir -p "$out/$v"
    if [ "$v" = scratch ]; then
        finetune "$out/$v/stage2" init.from=scratch init.teacher="$teacher" "${size[@]}"
        continue
    fi
    [ -n "${losses[$v]+set}" ] || { echo "unknown variant $v: scratch ${!losses[*]}" >&2; exit 2; }
    [ -f "$out/$v/stage1.nemo" ] || nemo-encrl distill model.teacher.path="$teacher" "${size[@]}" \
        trainer.max_steps="$steps" model.optim.lr=0.55 model.optim.sched.warmup_steps=150 \
        exp_manager.exp_dir="$out/$v/stage1" output_nemo="$out/$v/stage1.nemo" \
        learning_curve="$out/$v/stage1_curve.json" ${losses[$v]} > "$out/$v/stage1.log" 2>&1
    finetune "$out/$v/stage2" init.from=stage1 init.stage1="$out/$v/stage1.nemo"
done

python - "$out" "${variants[@]}" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| variant | stage-2 dev WER % (CTC loss) after each epoch |\n|---|---|")
for v in sys.argv[2:]:
    curve = json.loads((out / v / "stage2" / "curve.json").read_text())
    print(f"| {v} | " + ", ".join(f"{p['step']}: {100 * p['val_wer']:.1f} ({p['val_loss']:.1f})" for p in curve) + " |")
PY
stage1=()
for v in "${variants[@]}"; do [ -f "$out/$v/stage1.nemo" ] && stage1+=("$out/$v/stage1.nemo"); done
[ ${#stage1[@]} -eq 0 ] || python benchmarks/frame_spread.py "${stage1[@]}"
