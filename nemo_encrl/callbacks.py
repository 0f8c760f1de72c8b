"""Lightning callbacks the benchmark reads: a learning curve with wall-clock, written as it grows."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning.pytorch as pl


class LearningCurve(pl.Callback):
    """After every validation: epoch, step, training wall-clock so far and the validation metrics.

    The file is rewritten each time, so a killed run leaves the curve up to its last validation; a
    resumed run appends to it (its wall-clock continues from the last recorded point).
    """

    def __init__(self, path: str | Path, metrics: tuple[str, ...] = ("val_wer", "val_loss")):
        self.path = Path(path)
        self.metrics = metrics
        self.points: list[dict] = json.loads(self.path.read_text()) if self.path.exists() else []
        self._offset = self.points[-1]["wall_seconds"] if self.points else 0.0
        self._start = None

    def on_train_start(self, trainer, pl_module):
        self._start = time.time()

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero or self._start is None:
            return
        point = {"epoch": trainer.current_epoch, "step": trainer.global_step,
                 "wall_seconds": round(self._offset + time.time() - self._start, 1)}  # fmt: skip
        for name in self.metrics:
            value = trainer.callback_metrics.get(name)
            if value is not None:
                point[name] = float(value)
        self.points.append(point)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.points, indent=1))
