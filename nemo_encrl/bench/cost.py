"""Measuring step costs: a CTC step of the student at each depth, a stage-1 step with the teacher
online and reading the teacher cache, and the teacher's forward pass, all on the same lhotse batches
in one process (forward + loss + backward + AdamW update, after warm-up; two alternating rounds, the
faster kept, to even out drifts in machine load)."""

from __future__ import annotations

import platform
import time

import torch
from omegaconf import DictConfig, OmegaConf, open_dict


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_steps(step_fn, batches, warmup: int) -> float:
    """Seconds of the steps after `warmup`, each run once on its batch (the GPU synchronised around each)."""
    total = 0.0
    for i, batch in enumerate(batches):
        _sync()
        start = time.perf_counter()
        step_fn(batch)
        _sync()
        if i >= warmup:
            total += time.perf_counter() - start
    return total


def to_device(x, device):
    if torch.is_tensor(x):
        return x.to(device)
    if isinstance(x, dict):
        return {k: to_device(v, device) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_device(v, device) for v in x)
    return x


def _ctc_student(encrl, n_layers: int):
    """A plain CTC model of the stage-1 student's architecture cut to `n_layers`, its weights."""
    from nemo.collections.asr.models import EncDecCTCModelBPE

    cfg = OmegaConf.masked_copy(encrl.cfg, ["sample_rate", "preprocessor", "encoder", "decoder", "tokenizer",
                                            "train_ds", "ctc_reduction"])  # fmt: skip
    with open_dict(cfg):
        cfg.decoder.num_classes = -1
        cfg.encoder.n_layers = n_layers
    ctc = EncDecCTCModelBPE(cfg)
    ctc.encoder.load_state_dict(encrl.encoder.state_dict(), strict=False)
    return ctc.to(encrl.device)


def time_steps(stage1_cfg: DictConfig, depths: list[int], steps: int = 20, warmup: int = 3) -> dict:
    """Milliseconds per step of each kind; `stage1_cfg` is a stage-1 config (with `model.teacher.cache`
    set, the cached stage-1 step is timed too). Returns {"ms": {...}, "audio_seconds": s, ...}."""
    from nemo_encrl.models import EncRLModel

    torch.manual_seed(0)
    cfg = stage1_cfg.copy()
    with open_dict(cfg):
        cfg.model.train_ds.num_workers = 0
        cfg.model.pop("validation_ds", None)
    encrl = EncRLModel(cfg.model)
    cached = bool(cfg.model.teacher.get("cache"))
    batches = []
    for batch in encrl._train_dl:
        batches.append(batch)
        if len(batches) == steps + warmup:
            break
    audio_seconds = sum(float(b[1].sum()) for b in batches[warmup:]) / encrl.cfg.sample_rate
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # where the bench's training runs
    encrl.to(device)
    batches = [to_device(b, device) for b in batches]
    opt = torch.optim.AdamW([p for p in encrl.parameters() if p.requires_grad], lr=1e-4)

    def stage1_step(batch):
        opt.zero_grad()
        encrl._step_losses(batch)[2].backward()
        opt.step()

    def ctc_step_of(ctc):
        ctc_opt = torch.optim.AdamW(ctc.parameters(), lr=1e-4)

        def step(batch):
            signal, signal_len, transcript, transcript_len = batch[:4]
            ctc_opt.zero_grad()
            log_probs, enc_len, _ = ctc(input_signal=signal, input_signal_length=signal_len)
            ctc.loss(log_probs=log_probs, targets=transcript, input_lengths=enc_len, target_lengths=transcript_len).backward()
            ctc_opt.step()

        return step

    def kl_step_of(ctc):  # stage 2 with a KL term to the cached teacher's posteriors
        from nemo_encrl.cache.reader import teacher_outputs
        from nemo_encrl.losses import ctc_kl_loss

        kl_opt = torch.optim.AdamW(ctc.parameters(), lr=1e-4)

        def step(batch):
            signal, signal_len, transcript, transcript_len, cached = batch
            _, t_len, t_logp, _ = teacher_outputs(cached, encrl.teacher_cache.vocab_size, ())
            kl_opt.zero_grad()
            log_probs, enc_len, _ = ctc(input_signal=signal, input_signal_length=signal_len)
            T = min(log_probs.shape[1], t_logp.shape[1])
            loss = ctc.loss(log_probs=log_probs, targets=transcript, input_lengths=enc_len, target_lengths=transcript_len)
            (loss + 0.5 * ctc_kl_loss(log_probs[:, :T], t_logp[:, :T], torch.minimum(enc_len, t_len))).backward()
            kl_opt.step()

        return step

    def teacher_forward(batch):
        with torch.no_grad():
            feats, feat_len = encrl.preprocessor(input_signal=batch[0], length=batch[1])
            encrl.teacher(feats, feat_len)

    kinds = {f"ctc_L{d}": ctc_step_of(_ctc_student(encrl, d).train()) for d in depths}
    kinds["stage1_online"] = lambda b: stage1_step(b[:4])
    if cached:
        kinds["stage1_cached"] = stage1_step
        kinds.update({f"kl_cached_L{d}": kl_step_of(_ctc_student(encrl, d).train()) for d in depths})
    kinds["teacher_forward"] = teacher_forward
    encrl.train()
    best = {name: min(timed_steps(fn, batches, warmup) for _ in range(2)) for name, fn in kinds.items()}
    return {"ms": {k: round(1000 * v / steps, 1) for k, v in best.items()}, "audio_seconds": round(audio_seconds, 1),
            "steps": steps, "threads": torch.get_num_threads(), "machine": machine()}  # fmt: skip


def machine() -> str:
    import os

    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}, Python {platform.python_version()}"


def costs_from_timing(timing: dict, full_depth: int) -> dict:
    """Step costs in units of a full-depth CTC step, as `Costs` takes them."""
    ms = timing["ms"]
    unit = ms[f"ctc_L{full_depth}"]
    steps_audio_hours = timing["audio_seconds"] / 3600
    teacher_per_hour = ms["teacher_forward"] * timing["steps"] / steps_audio_hours / unit
    return {
        "ctc": {int(k.removeprefix("ctc_L")): round(v / unit, 3) for k, v in ms.items() if k.startswith("ctc_L")},
        "stage1_online": round(ms["stage1_online"] / unit, 3),
        "stage1_cached": round(ms.get("stage1_cached", ms["stage1_online"]) / unit, 3),
        "teacher_per_audio_hour": round(teacher_per_hour, 1),
        "stage2_kl_cached": {int(k.removeprefix("kl_cached_L")): round(v / unit, 3) for k, v in ms.items() if k.startswith("kl_cached_L")},
        "unit_ms": unit,
        "source": f"measured {time.strftime('%Y-%m-%d %H:%M')} on {timing['machine']}, {timing['threads']} threads, "
                  f"{timing['steps']} steps of each kind",
    }
