"""Synthetic English voices from Debian's espeak-ng and flite, rendered to 16 kHz mono wav.

A *voice* is one engine setting that stays fixed for a speaker (espeak-ng accent + variant, or a
flite voice); speaking rate and pitch vary per utterance. Corpus splits are disjoint in voices.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ESPEAK_ACCENTS = (
    "en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)  # fmt: skip
# natural-sounding variants only (no whisper, croak, robots)
ESPEAK_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "adam", "Andy", "Annie", "aunty", "benjamin", "david", "ed",
    "edward", "iven", "john", "linda", "max", "paul", "quincy", "rob", "robert", "steph", "travis", "zac",
)  # fmt: skip
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")

ESPEAK_DEFAULT_WPM = 175


class SynthesisError(RuntimeError):
    pass


@dataclass(frozen=True, order=True)
class Voice:
    engine: str  # "espeak-ng" or "flite"
    name: str  # "en-us+m3" or "slt"

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


def require_engine(engine: str) -> str:
    path = shutil.which(engine)
    if path is None:
        raise SynthesisError(
            f"'{engine}' is not installed: it is needed to synthesise the offline corpus. "
            f"Install Debian's package with: apt-get install {engine}"
        )
    return path


def voice_inventory(engines: tuple[str, ...] = ("espeak-ng", "flite")) -> list[Voice]:
    """Every voice of the requested engines, sorted (the split assignment depends on this order)."""
    voices: list[Voice] = []
    for engine in engines:
        if engine == "espeak-ng":
            voices += [Voice(engine, f"{a}+{v}") for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS]
        elif engine == "flite":
            voices += [Voice(engine, v) for v in FLITE_VOICES]
        else:
            raise ValueError(f"unknown TTS engine '{engine}': choose from espeak-ng, flite")
    return sorted(voices)


def synthesize(voice: Voice, text: str, rate: float, pitch: int, sample_rate: int = 16000) -> np.ndarray:
    """Speak `text` with `voice`; `rate` is relative to the engine's default speed, `pitch` in 0..99."""
    if voice.engine == "espeak-ng":
        cmd = [require_engine("espeak-ng"), "-v", voice.name, "-s", str(round(ESPEAK_DEFAULT_WPM * rate)),
               "-p", str(pitch), "--stdout", text]  # fmt: skip
    elif voice.engine == "flite":
        cmd = [require_engine("flite"), "-voice", voice.name, "--setf", f"duration_stretch={1.0 / rate:.3f}",
               "-t", text, "-o", "/dev/stdout"]  # fmt: skip
    else:
        raise ValueError(f"unknown TTS engine '{voice.engine}'")
    proc = subprocess.run(cmd, capture_output=True, timeout=60)
    if proc.returncode != 0 or len(proc.stdout) < 100:
        raise SynthesisError(f"{voice.id} failed on {text!r}: {proc.stderr.decode(errors='replace').strip()}")
    audio, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if sr != sample_rate:
        audio = soxr.resample(audio, sr, sample_rate)
    return audio.astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sample_rate, subtype="PCM_16")
