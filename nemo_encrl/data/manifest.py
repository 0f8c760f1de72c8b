"""NeMo JSON-lines manifests: writing them, and checking one before hours of training depend on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import soundfile as sf


class ManifestError(ValueError):
    pass


def write_manifest(path: Path, rows: Iterable[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_manifest(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ManifestError(f"{path}:{lineno}: not a JSON line ({e.msg})") from e
    if not rows:
        raise ManifestError(f"manifest {path} has no entries")
    return rows


def manifest_hours(path: str | Path) -> float:
    """Hours of audio a manifest lists (its `duration`s)."""
    return sum(float(r["duration"]) for r in read_manifest(path)) / 3600


def resolve_audio(row: dict, manifest: Path) -> Path:
    """NeMo resolves relative audio paths against the manifest's folder; so do we."""
    audio = Path(row["audio_filepath"])
    return audio if audio.is_absolute() else manifest.parent / audio


def validate_manifest(path: str | Path, sample_rate: int | None = None, check_audio: bool = True) -> list[dict]:
    """Fail with file, line and field when an entry would break or silently poison training."""
    path = Path(path)
    rows = read_manifest(path)
    for lineno, row in enumerate(rows, 1):
        where = f"{path}:{lineno}"
        for key in ("audio_filepath", "duration", "text"):
            if key not in row:
                raise ManifestError(f"{where}: missing key '{key}'")
        if not str(row["text"]).strip():
            raise ManifestError(f"{where}: empty 'text' for {row['audio_filepath']}")
        if not check_audio:
            continue
        audio = resolve_audio(row, path)
        if not audio.is_file():
            raise ManifestError(f"{where}: audio file {audio} does not exist")
        if sample_rate is not None:
            info = sf.info(str(audio))
            if info.samplerate != sample_rate:
                raise ManifestError(
                    f"{where}: {audio} has sample rate {info.samplerate} Hz, the model expects {sample_rate} Hz "
                    "(resample the audio, or set the model's sample_rate)"
                )
    return rows
