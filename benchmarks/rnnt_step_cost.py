"""Cost of an RNN-T (and two-pass) training step relative to a CTC step of the same Conformer, per loss.

NeMo's RNN-T losses run Python loops over the lattice on CPU; `torch_vectorized` (nemo_encrl) loops over
frames only. Every model sees the same lhotse-bucketed batches of the bench corpus (forward + loss +
backward + AdamW update, after warm-up; two alternating rounds, the faster kept), in one process.

    python benchmarks/rnnt_step_cost.py --steps 10 --json docs/plots/rnnt_step_cost.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from omegaconf import open_dict

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ctc", default=str(REPO / "models/demo_teacher.nemo"), help="the CTC model whose encoder is timed")
    parser.add_argument("--manifest", default=str(REPO / "data/corpus/bench/train_manifest.json"))
    parser.add_argument("--losses", nargs="+", default=["torch_vectorized", "warprnnt_numba"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from nemo_encrl.bench.cost import machine, timed_steps
    from nemo_encrl.config import load_config
    from nemo_encrl.models.two_pass import TwoPassModel
    from nemo_encrl.teacher import load_ctc_model
    from nemo_encrl.training import copy_tokenizer

    ctc = load_ctc_model(path=args.ctc, what="CTC model")
    models = {}
    for loss in args.losses:
        cfg = load_config("two_pass", "conformer_rnnt_attention_demo", [
            f"tokenizer_from={args.ctc}", f"model.tokenizer.dir={tempfile.mkdtemp()}", f"model.loss.loss_name={loss}",
            f"model.train_ds.manifest_filepath={args.manifest}", "model.train_ds.num_workers=0", "~model.validation_ds",
        ])  # fmt: skip
        copy_tokenizer(cfg)
        with open_dict(cfg.model.encoder):
            cfg.model.encoder.update({k: ctc.cfg.encoder[k] for k in ("d_model", "n_layers", "n_heads")})
        models[loss] = TwoPassModel(cfg.model)
    first = next(iter(models.values()))
    batches = []
    for batch in first._train_dl:
        batches.append(batch)
        if len(batches) == args.steps + args.warmup:
            break
    audio_seconds = sum(float(b[1].sum()) for b in batches[args.warmup :]) / first.cfg.sample_rate

    def stepper(model, loss_fn):
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        model.train()

        def step(batch):
            opt.zero_grad()
            loss_fn(model, batch).backward()
            opt.step()

        return step

    def ctc_loss(model, batch):
        log_probs, lengths, _ = model.forward(input_signal=batch[0], input_signal_length=batch[1])
        return model.loss(log_probs=log_probs, targets=batch[2], input_lengths=lengths, target_lengths=batch[3])

    def rnnt_loss(model, batch, with_attention=False):
        encoded, encoded_len = model.forward(input_signal=batch[0], input_signal_length=batch[1])
        rnnt, attn = model._losses(encoded, encoded_len, batch[2], batch[3])
        return rnnt + model.attn_loss_weight * attn if with_attention else rnnt

    kinds = {"ctc": stepper(ctc, ctc_loss)}
    for loss, model in models.items():
        kinds[f"rnnt[{loss}]"] = stepper(model, rnnt_loss)
        kinds[f"two_pass[{loss}]"] = stepper(model, lambda m, b: rnnt_loss(m, b, with_attention=True))
    best = {name: float("inf") for name in kinds}
    for _ in range(2):
        for name, fn in kinds.items():
            best[name] = min(best[name], timed_steps(fn, batches, args.warmup))
    ms = {name: 1000 * t / args.steps for name, t in best.items()}
    result = {
        "encoder": f"d{ctc.cfg.encoder.d_model}x{ctc.cfg.encoder.n_layers}", "threads": args.threads,
        "steps": args.steps, "audio_seconds_per_step": round(audio_seconds / args.steps, 1),
        "machine": machine(),
        "ms_per_step": {k: round(v, 1) for k, v in ms.items()},
        "ms_per_audio_second": {k: round(v * args.steps / audio_seconds, 2) for k, v in ms.items()},
        "relative_to_ctc": {k: round(v / ms["ctc"], 2) for k, v in ms.items()},
    }  # fmt: skip
    print("| step | ms / step | ms / audio-second | x CTC |\n|---|---|---|---|")
    for name in kinds:
        print(f"| {name} | {result['ms_per_step'][name]} | {result['ms_per_audio_second'][name]} | {result['relative_to_ctc'][name]} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
