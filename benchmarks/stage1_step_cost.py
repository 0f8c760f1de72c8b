"""Cost of one EncRL stage-1 training step relative to a plain CTC step of the same student.

Both models see the same lhotse-bucketed batches; each step is forward + loss + backward + AdamW
update, timed after warm-up. Stage 1 pays for the frozen teacher's forward pass and the alignment
heads; the plain CTC step pays for the CTC loss. With --cache (a folder from `nemo-encrl
cache-teacher` for the same manifest and config), stage 1 is also timed reading the teacher's
outputs from the cache instead of running it, and the data loader's extra work (reading the cached
arrays) is timed on its own.

    python benchmarks/stage1_step_cost.py --teacher models/demo_teacher.nemo \
        --manifest data/corpus/demo/train_manifest.json --steps 20 [--cache runs/teacher_cache/demo]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf, open_dict


def _time_steps(step_fn, batches, warmup: int) -> list[float]:
    times = []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        step_fn(batch)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--cache", default=None, help="teacher cache folder for the same manifest and overrides")
    parser.add_argument("overrides", nargs="*", help="overrides of conf/encrl/encrl_clip_mse.yaml")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from nemo.collections.asr.models import EncDecCTCModelBPE

    from nemo_encrl.config import load_config
    from nemo_encrl.models import EncRLModel

    cfg = load_config("encrl", "encrl_clip_mse", [f"model.teacher.path={args.teacher}",
                                                 f"model.train_ds.manifest_filepath={args.manifest}",
                                                 "model.train_ds.num_workers=0", "~model.validation_ds",
                                                 f"model.teacher.cache={args.cache}" if args.cache else "model.teacher.cache=null",
                                                 *args.overrides])  # fmt: skip
    encrl = EncRLModel(cfg.model)
    ctc_cfg = OmegaConf.masked_copy(encrl.cfg, ["sample_rate", "preprocessor", "encoder", "decoder", "tokenizer",
                                                "train_ds", "ctc_reduction"])  # fmt: skip
    with open_dict(ctc_cfg):
        ctc_cfg.decoder.num_classes = -1
    ctc = EncDecCTCModelBPE(ctc_cfg)
    ctc.encoder.load_state_dict(encrl.encoder.state_dict())

    n = args.steps + args.warmup

    def load_batches(dl) -> tuple[list, float]:
        out, start = [], time.perf_counter()
        for batch in dl:
            out.append(batch)
            if len(out) == n:
                break
        return out, time.perf_counter() - start

    batches, _ = load_batches(encrl._train_dl)
    loading = {}
    if args.cache:  # loading alone (no workers, same sampler seed): NeMo's dataset, then ours with the cache
        from nemo.collections.asr.data.audio_to_text_lhotse import LhotseSpeechToTextBpeDataset
        from nemo.collections.common.data.lhotse import get_lhotse_dataloader_from_config

        plain = get_lhotse_dataloader_from_config(encrl.cfg.train_ds, global_rank=0, world_size=1,
                                                  dataset=LhotseSpeechToTextBpeDataset(encrl.tokenizer))  # fmt: skip
        for _ in range(2):
            for name, dl in (("audio_only", plain), ("with_cache", encrl._train_dl)):
                loading[name] = min(loading.get(name, float("inf")), load_batches(dl)[1])
    audio_seconds = sum(float(b[1].sum()) for b in batches[args.warmup :]) / encrl.cfg.sample_rate

    encrl_opt = torch.optim.AdamW([p for p in encrl.parameters() if p.requires_grad], lr=1e-4)

    def encrl_step(batch):  # the teacher online
        encrl_opt.zero_grad()
        encrl._step_losses(batch[:4])[2].backward()
        encrl_opt.step()

    def cached_step(batch):  # the teacher's outputs from the cache
        encrl_opt.zero_grad()
        encrl._step_losses(batch)[2].backward()
        encrl_opt.step()

    def ctc_step(batch, opt=torch.optim.AdamW(ctc.parameters(), lr=1e-4)):
        signal, signal_len, transcript, transcript_len = batch[:4]
        opt.zero_grad()
        log_probs, enc_len, _ = ctc(input_signal=signal, input_signal_length=signal_len)
        ctc.loss(log_probs=log_probs, targets=transcript, input_lengths=enc_len, target_lengths=transcript_len).backward()
        opt.step()

    def teacher_forward(batch):
        feats, feat_len = encrl.preprocessor(input_signal=batch[0], length=batch[1])
        encrl.teacher(feats, feat_len)

    encrl.train()
    ctc.train()
    steps = {"ctc": ctc_step, "encrl": encrl_step, "teacher_forward": teacher_forward}
    if args.cache:
        steps["encrl_cached"] = cached_step
    rounds = {name: [] for name in steps}
    for _ in range(2):  # alternate to even out drifts in machine load
        for name, fn in steps.items():
            rounds[name].append(sum(_time_steps(fn, batches, args.warmup)))
    best = {k: min(v) for k, v in rounds.items()}
    report = {
        "teacher": args.teacher,
        "student_parameters": sum(p.numel() for p in ctc.parameters()),
        "teacher_parameters": sum(p.numel() for p in encrl.teacher.parameters()),
        "steps": args.steps,
        "audio_seconds_timed": round(audio_seconds, 1),
        "threads": args.threads,
        "ms_per_step": {k: round(1000 * v / args.steps, 1) for k, v in best.items()},
        "ms_per_audio_second": {k: round(1000 * v / audio_seconds, 2) for k, v in best.items()},
        "stage1_over_ctc": round(best["encrl"] / best["ctc"], 2),
        **({"cached_stage1_over_ctc": round(best["encrl_cached"] / best["ctc"], 2), "cache": args.cache,
            "loader_ms_per_batch": {k: round(1000 * v / n, 1) for k, v in loading.items()}} if args.cache else {}),
        "overrides": args.overrides,
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
