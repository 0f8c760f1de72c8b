"""Cost of one EncRL stage-1 training step relative to a plain CTC step of the same student.

The bench's own measurement (`nemo_encrl.bench.cost.time_steps`: the same lhotse-bucketed batches for
every kind of step, forward + loss + backward + AdamW update after warm-up), for any stage-1 config and
manifest. With --cache (a folder from `nemo-encrl cache-teacher` for the same manifest and config),
stage 1 is also timed reading the teacher's outputs from the cache, and the data loader's extra work
(reading the cached arrays) is timed on its own.

    python benchmarks/stage1_step_cost.py --teacher models/demo_teacher.nemo \
        --manifest data/corpus/demo/train_manifest.json --steps 20 [--cache runs/teacher_cache/demo]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def loader_ms_per_batch(stage1_cfg, batches: int) -> dict:
    """Loading alone (no workers, same sampler seed): NeMo's audio-only dataset, then ours with the cache."""
    from nemo.collections.asr.data.audio_to_text_lhotse import LhotseSpeechToTextBpeDataset
    from nemo.collections.common.data.lhotse import get_lhotse_dataloader_from_config

    from nemo_encrl.models import EncRLModel

    encrl = EncRLModel(stage1_cfg.model)
    plain = get_lhotse_dataloader_from_config(encrl.cfg.train_ds, global_rank=0, world_size=1,
                                              dataset=LhotseSpeechToTextBpeDataset(encrl.tokenizer))  # fmt: skip
    best = {}
    for _ in range(2):
        for name, loader in (("audio_only", plain), ("with_cache", encrl._train_dl)):
            start = time.perf_counter()
            for i, _batch in enumerate(loader):
                if i + 1 == batches:
                    break
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    return {k: round(1000 * v / batches, 1) for k, v in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--depths", type=int, nargs="*", default=None, help="student depths to time (default: its own)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--cache", default=None, help="teacher cache folder for the same manifest and overrides")
    parser.add_argument("overrides", nargs="*", help="overrides of conf/encrl/encrl_clip_mse.yaml")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from nemo_encrl.bench.cost import time_steps
    from nemo_encrl.config import load_config

    cfg = load_config("encrl", "encrl_clip_mse", [f"model.teacher.path={args.teacher}",
                                                 f"model.train_ds.manifest_filepath={args.manifest}",
                                                 "model.train_ds.num_workers=0", "~model.validation_ds",
                                                 f"model.teacher.cache={args.cache}" if args.cache else "model.teacher.cache=null",
                                                 *args.overrides])  # fmt: skip
    depths = args.depths or [int(cfg.model.encoder.n_layers)]
    timing = time_steps(cfg, depths, steps=args.steps, warmup=args.warmup)
    ms, ctc = timing["ms"], timing["ms"][f"ctc_L{depths[0]}"]
    report = {
        "teacher": args.teacher, **timing,
        "ms_per_audio_second": {k: round(v * args.steps / timing["audio_seconds"], 2) for k, v in ms.items()},
        "relative_to_ctc": {k: round(v / ctc, 2) for k, v in ms.items()},
        "overrides": args.overrides,
    }  # fmt: skip
    if args.cache:
        report["loader_ms_per_batch"] = loader_ms_per_batch(cfg, args.steps + args.warmup)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
