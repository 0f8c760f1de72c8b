"""Lightning callbacks the benchmark reads: a learning curve with wall-clock, written as it grows."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning.pytorch as pl
import torch


class LearningCurve(pl.Callback):
    """After every validation: epoch, step, training wall-clock and audio seen so far, and the validation
    metrics a model logs of `metrics` (a two-pass model's attention loss: its dev WER is the first pass's).

    The file is rewritten each time, so a killed run leaves the curve up to its last validation; a
    resumed run drops the points past its checkpoint's step and appends (wall-clock and audio continue
    from the last point kept).
    """

    def __init__(self, path: str | Path, metrics: tuple[str, ...] = ("val_wer", "val_loss", "val_attn_loss")):
        self.path = Path(path)
        self.metrics = metrics
        self.points: list[dict] = json.loads(self.path.read_text()) if self.path.exists() else []
        self._start = None
        self._audio = 0.0

    def on_train_start(self, trainer, pl_module):
        self.points = [p for p in self.points if p.get("step", 0) <= trainer.global_step]
        self._offset = self.points[-1]["wall_seconds"] if self.points else 0.0
        self._audio = self.points[-1].get("audio_seconds", 0.0) if self.points else 0.0
        self._start = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if isinstance(batch, (list, tuple)) and len(batch) > 1 and torch.is_tensor(batch[1]):  # (audio, audio_len, ...)
            self._audio += float(batch[1].sum()) / pl_module.cfg.sample_rate

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero or self._start is None:
            return
        point = {"epoch": trainer.current_epoch, "step": trainer.global_step,
                 "wall_seconds": round(self._offset + time.time() - self._start, 1),
                 "audio_seconds": round(self._audio, 1)}  # fmt: skip
        for name in self.metrics:
            value = trainer.callback_metrics.get(name)
            if value is not None:
                point[name] = float(value)
        self._write(point)

    def on_train_end(self, trainer, pl_module):
        """The last step, with no metrics unless it was validated: the run's full wall-clock and audio."""
        if trainer.is_global_zero and self._start is not None and not any(p["step"] == trainer.global_step for p in self.points):
            self._write({"epoch": trainer.current_epoch, "step": trainer.global_step, "end": True,
                         "wall_seconds": round(self._offset + time.time() - self._start, 1),
                         "audio_seconds": round(self._audio, 1)})  # fmt: skip

    def _write(self, point: dict) -> None:
        self.points.append(point)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.points, indent=1))


class RegularizationWarmup(pl.Callback):
    """SpecAugment and dropout stay off for the first `steps` optimizer steps, then come on.

    A small CTC model on little data leaves the all-blank plateau much sooner without them, and
    over-fits soon after without them; switching by global step makes one config and one command
    reproduce both phases, across resumes.
    """

    def __init__(self, steps: int):
        self.steps = int(steps)
        self._spec_augment = None
        self._dropout_p: dict[torch.nn.Dropout, float] = {}
        self._active: bool | None = None

    def _set(self, module, active: bool) -> None:
        if active == self._active:
            return
        if self._active is None:  # first call: remember the configured regularisation
            self._spec_augment = getattr(module, "spec_augmentation", None)
            self._dropout_p = {m: m.p for m in module.modules() if isinstance(m, torch.nn.Dropout)}
        if hasattr(module, "spec_augmentation"):
            module.spec_augmentation = self._spec_augment if active else None
        for m, p in self._dropout_p.items():
            m.p = p if active else 0.0
        self._active = active

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._set(pl_module, trainer.global_step >= self.steps)

    def on_train_end(self, trainer, pl_module):
        self._set(pl_module, True)  # the saved model carries its configured regularisation


class EncoderFreeze(pl.Callback):
    """The encoder stays frozen (no gradient, eval mode) for the first `steps` optimizer steps, then trains.

    New heads on a pretrained encoder (the two-pass teacher's RNN-T and attention decoders on the streaming CTC
    encoder) first learn on features that stay put: random heads' gradients do not reach the encoder, and a
    step skips the encoder's backward pass. By global step, so a resumed run picks up the same phase.
    """

    def __init__(self, steps: int):
        self.steps = int(steps)

    @staticmethod
    def _set(pl_module, frozen: bool) -> None:
        pl_module.encoder.requires_grad_(not frozen)
        if frozen:
            pl_module.encoder.eval()  # BatchNorm statistics and dropout as the pretrained encoder had them

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step < self.steps:
            self._set(pl_module, True)
        elif not next(pl_module.encoder.parameters()).requires_grad:  # the freeze ends (or a run resumed past it)
            self._set(pl_module, False)
            pl_module.encoder.train()

    def on_train_end(self, trainer, pl_module):
        self._set(pl_module, False)  # the saved model is trainable as configured


class StepProgressBar(pl.callbacks.TQDMProgressBar):
    """One training bar over the run's optimizer steps, with its total and an ETA.

    Lightning draws a bar per epoch over the loader's batches; lhotse loaders have no length, so it shows
    `20/?` with no ETA. Runs here are budgeted in steps (`trainer.max_steps`): the bar counts global steps
    to that budget, starting at the resumed step, and the description names the epoch.
    """

    def init_train_tqdm(self):
        """The bar goes to the terminal even while a quiet job's output goes to its log file."""
        from nemo_encrl.joblog import terminal

        bar = super().init_train_tqdm()
        if (stream := terminal()) is not None:
            bar.fp = stream
            bar.sp = bar.status_printer(stream)
        return bar

    def _steps_known(self, trainer) -> bool:
        from nemo_encrl.training import UNBOUNDED_STEPS

        return 0 < (trainer.max_steps or -1) < UNBOUNDED_STEPS

    def on_train_start(self, trainer, pl_module):
        super().on_train_start(trainer, pl_module)
        if self._steps_known(trainer):
            self.train_progress_bar.reset(total=trainer.max_steps)
            self.train_progress_bar.initial = trainer.global_step  # the ETA counts only this run's steps
            self.train_progress_bar.n = trainer.global_step

    def on_train_epoch_start(self, trainer, *args):
        if not self._steps_known(trainer):
            return super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not self._steps_known(trainer):
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        bar, step = self.train_progress_bar, trainer.global_step
        if self._should_update(step, bar.total):
            bar.n = step
            bar.refresh()
            bar.set_postfix(self.get_metrics(trainer, pl_module))


class ProgressFile(pl.Callback):
    """The run's optimizer step and budget in a file, for a parent process that shows several runs' progress
    (the bench's workers); written every `every` steps and at the end, whether or not a bar is shown."""

    def __init__(self, path: str, every: int = 5):
        self.path, self.every = Path(path), every

    def _write(self, trainer) -> None:
        self.path.write_text(f"{trainer.global_step} {trainer.max_steps}\n")

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step % self.every == 0:
            self._write(trainer)

    def on_train_end(self, trainer, pl_module):
        self._write(trainer)
