"""Loading a NeMo CTC model (the teacher) from a .nemo path or a pretrained name, with clear errors."""

from __future__ import annotations

import tarfile
from pathlib import Path


class TeacherError(ValueError):
    pass


def load_ctc_model(path: str | Path | None = None, pretrained_name: str | None = None, map_location: str = "cpu",
                   what: str = "teacher"):  # fmt: skip
    """A NeMo CTC model from exactly one of `path` (a .nemo file) or `pretrained_name` (NGC/HF name, needs
    network). `what` names the model in errors ("teacher", "model", ...)."""
    from nemo.collections.asr.models import EncDecCTCModel

    return load_asr_model(path, pretrained_name, map_location, what, kind=EncDecCTCModel)


def load_asr_model(path: str | Path | None = None, pretrained_name: str | None = None, map_location: str = "cpu",
                   what: str = "model", kind=None):  # fmt: skip
    """Any NeMo ASR model (of class `kind` when given), with the errors of `load_ctc_model`."""
    from nemo.collections.asr.models import ASRModel

    if (path is None) == (pretrained_name is None):
        raise TeacherError("give exactly one of teacher.path (a .nemo file) or teacher.pretrained_name")
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise TeacherError(f"{what} file {path} does not exist")
        if not tarfile.is_tarfile(path):
            raise TeacherError(f"{what} file {path} is not a .nemo archive")
        try:
            model = ASRModel.restore_from(str(path), map_location=map_location)
        except Exception as e:  # NeMo raises many kinds; keep the cause, name the file
            raise TeacherError(f"could not restore {what} {path}: {type(e).__name__}: {e}") from e
        source = str(path)
    else:
        try:
            model = ASRModel.from_pretrained(pretrained_name, map_location=map_location)
        except Exception as e:
            raise TeacherError(
                f"could not load pretrained teacher '{pretrained_name}': {type(e).__name__}: {e}. "
                "Pretrained names need network access to NGC/Hugging Face; offline, pass teacher.path to a .nemo file"
            ) from e
        source = pretrained_name
    if kind is not None and not isinstance(model, kind):
        wanted = "a CTC model (EncDecCTCModel / EncDecCTCModelBPE)" if kind.__name__ == "EncDecCTCModel" else f"a {kind.__name__}"
        raise TeacherError(f"{what} {source} is a {type(model).__name__}, not {wanted}")
    return model
