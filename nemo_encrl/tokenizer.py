"""The teacher's BPE tokenizer, trained with NeMo's own sentencepiece tooling, and a CTC-fit check.

Apostrophes stay inside words (`split_by_unicode_script=False`): "don't" is one unit of speech.
"""

from __future__ import annotations

import atexit
import logging
import math
import shutil
import tempfile
from pathlib import Path

from nemo_encrl.data.manifest import read_manifest

log = logging.getLogger(__name__)


def train_bpe_tokenizer(manifests: list[str | Path], out_dir: str | Path, vocab_size: int = 256,
                        tokenizer_type: str = "bpe") -> Path:  # fmt: skip
    """Writes tokenizer.model / tokenizer.vocab / vocab.txt into out_dir (kept if already there)."""
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    out_dir = Path(out_dir)
    if (out_dir / "tokenizer.model").exists():
        log.info("tokenizer already exists in %s", out_dir)
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    text_file = out_dir / "train_text.txt"
    with text_file.open("w", encoding="utf-8") as f:
        for manifest in manifests:
            for row in read_manifest(manifest):
                f.write(row["text"].strip() + "\n")
    create_spt_model(
        str(text_file), vocab_size, sample_size=-1, do_lower_case=False, tokenizer_type=tokenizer_type,
        output_dir=str(out_dir), split_by_unicode_script=False,
    )  # fmt: skip
    return out_dir


def export_tokenizer(model, directory: str | Path) -> Path:
    """A NeMo BPE model's tokenizer files (tokenizer.model, vocab.txt, ...) into `directory`, for restored
    and freshly built models alike."""
    import copy

    from omegaconf import open_dict

    directory = Path(directory)
    tok_cfg = copy.deepcopy(model.cfg.tokenizer)
    with open_dict(tok_cfg):
        tok_cfg.pop("dir", None)  # an existing local `dir` makes NeMo copy a directory as if it were a file
    model._extract_tokenizer_from_config(tok_cfg, str(directory))
    if not (directory / "tokenizer.model").exists():
        raise FileNotFoundError(f"no tokenizer.model could be extracted from {type(model).__name__} into {directory}")
    return directory


def process_tokenizer_dir(prefix: str) -> Path:
    """A fresh temporary folder for a tokenizer that a model built in this process reads (and copies into its
    .nemo when saved): removed when the process ends, not before, since the model may be saved late."""
    directory = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return Path(directory)


def ctc_frames(duration: float, window_stride: float, subsampling_factor: int) -> int:
    return math.ceil(math.ceil(duration / window_stride) / subsampling_factor)


def tokens_per_frame(manifest: str | Path, tokenizer, window_stride: float = 0.01,
                     subsampling_factor: int = 4) -> dict[str, float]:  # fmt: skip
    """How crowded the CTC alignment is: tokens (plus repeats, which need a blank) per encoder frame."""
    ratios, unalignable = [], 0
    for row in read_manifest(manifest):
        ids = tokenizer.text_to_ids(row["text"])
        needed = len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))
        frames = ctc_frames(row["duration"], window_stride, subsampling_factor)
        ratios.append(len(ids) / frames)
        unalignable += needed > frames
    ratios.sort()
    return {
        "mean": sum(ratios) / len(ratios),
        "p99": ratios[min(len(ratios) - 1, int(0.99 * len(ratios)))],
        "max": ratios[-1],
        "unalignable_fraction": unalignable / len(ratios),
    }
