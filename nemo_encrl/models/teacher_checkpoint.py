"""Checkpoints without the frozen teacher: its weights never change, so exp_manager's .ckpt files keep
only a digest of them and where they came from (the demo's 1.16M-parameter student of the 5.2M demo
teacher: 36.4 MB -> 15.4 MB per checkpoint; with an NGC-size teacher, gigabytes per run). On load the
teacher is taken from the model being resumed (built from `model.teacher.path`/`pretrained_name`), or
loaded from there, and must have the same digest. The stage-1 .nemo stays whole (it is the artifact).
"""

from __future__ import annotations

import hashlib

import torch

PREFIX = "teacher."
KEY = "nemo_encrl_teacher"


class TeacherCheckpointError(RuntimeError):
    pass


def state_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class TeacherFreeCheckpointMixin:
    """For LightningModules with a frozen `self.teacher` (a TeacherWrapper) and `cfg.teacher.path|pretrained_name`."""

    _teacher_digest: str | None = None

    def teacher_digest(self) -> str:
        if self._teacher_digest is None:
            self._teacher_digest = state_digest(self.teacher)
        return self._teacher_digest

    def _teacher_source(self) -> str:
        t = self.cfg.teacher
        return str(t.get("path") or t.get("pretrained_name") or "unknown")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith(PREFIX)]:
            del state[key]
        checkpoint[KEY] = {"digest": self.teacher_digest(), "source": self._teacher_source()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        info = checkpoint.get(KEY)
        state = checkpoint.get("state_dict", {})
        if info is None or any(k.startswith(PREFIX) for k in state):
            return  # an older checkpoint that carries the teacher itself
        if self.teacher_digest() != info["digest"]:  # e.g. load_from_checkpoint: built from config, weights random
            self._load_teacher_weights(info)
        state.update({PREFIX + k: v for k, v in self.teacher.state_dict().items()})

    def _load_teacher_weights(self, info: dict) -> None:
        from nemo_encrl.teacher import load_ctc_model

        t = self.cfg.teacher
        if not (t.get("path") or t.get("pretrained_name")):
            raise TeacherCheckpointError(f"this checkpoint's teacher ({info['source']}) is not in the model and "
                                         "model.teacher names no path or pretrained_name to load it from")  # fmt: skip
        loaded = load_ctc_model(path=t.get("path"), pretrained_name=None if t.get("path") else t.get("pretrained_name"))
        self.teacher.load_from(loaded)
        self._teacher_digest = None
        if self.teacher_digest() != info["digest"]:
            raise TeacherCheckpointError(
                f"teacher {self._teacher_source()} is not the teacher this checkpoint was trained with ({info['source']}, "
                f"weights digest {info['digest']}, now {self.teacher_digest()}): point model.teacher at that model")
