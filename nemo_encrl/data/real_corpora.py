"""Real corpora for users with the data on disk: LibriSpeech and TED-LIUM v3 via lhotse's own recipes,
written in the same form as the offline corpus (NeMo manifest + lhotse CutSet per split)."""

from __future__ import annotations

import re
from pathlib import Path

from nemo_encrl.data.manifest import write_manifest

_TEDLIUM_NOISE = re.compile(r"<unk>|\{[^}]*\}|\[[^\]]*\]|\([^)]*\)")


def normalize_transcript(text: str) -> str:
    """Lowercase words and apostrophes, as the offline corpus and the teacher's tokenizer expect."""
    text = _TEDLIUM_NOISE.sub(" ", text.lower())
    text = re.sub(r"\s+'", "'", text)  # TED-LIUM writes "it 's"
    text = re.sub(r"[^a-z' ]+", " ", text)
    return " ".join(text.split())


def export_cuts(cuts, out_dir: Path, split: str) -> dict[str, str]:
    """One split's cuts -> `{split}_manifest.json` (NeMo, with offsets) and `{split}_cuts.jsonl.gz`."""
    rows = []
    kept = []
    for cut in cuts:
        text = normalize_transcript(" ".join(s.text or "" for s in cut.supervisions))
        if not text:
            continue
        source = cut.recording.sources[0]
        if source.type != "file":
            raise ValueError(f"{cut.recording.id}: only file-backed recordings can go into a NeMo manifest")
        row = {"audio_filepath": str(Path(source.source).resolve()), "duration": round(cut.duration, 4),
               "text": text, "utt_id": cut.id}  # fmt: skip
        if cut.start > 0 or cut.duration < cut.recording.duration:
            row["offset"] = round(cut.start, 4)
        if cut.supervisions and cut.supervisions[0].speaker:
            row["speaker"] = cut.supervisions[0].speaker
        rows.append(row)
        kept.append(cut)
    if not rows:
        raise ValueError(f"no utterances with text in split '{split}'")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = write_manifest(out_dir / f"{split}_manifest.json", rows)
    cuts_path = out_dir / f"{split}_cuts.jsonl.gz"
    type(cuts).from_cuts(kept).to_file(cuts_path)
    return {"manifest": str(manifest), "cuts": str(cuts_path)}


def _cuts_from_parts(parts: dict) -> dict:
    from lhotse import CutSet

    return {
        name: CutSet.from_manifests(recordings=m["recordings"], supervisions=m["supervisions"]).trim_to_supervisions(
            keep_overlapping=False
        )
        for name, m in parts.items()
    }


def _sphere_backend():
    """TED-LIUM 3's .sph files are plain PCM that libsndfile reads; lhotse insists on sph2pipe (a download)
    unless told otherwise. Readers later on: `LHOTSE_AUDIO_BACKEND=LibsndfileBackend`."""
    import contextlib
    import shutil

    from lhotse.audio.backend import audio_backend

    return contextlib.nullcontext() if shutil.which("sph2pipe") else audio_backend("LibsndfileBackend")


def prepare_librispeech(corpus_dir: str | Path, out_dir: str | Path, parts: str | list[str] = "auto") -> dict:
    """`corpus_dir` is the folder holding `dev-clean/`, `train-clean-100/`, ... (LibriSpeech's layout)."""
    from lhotse.recipes import prepare_librispeech as lhotse_prepare

    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"LibriSpeech directory {corpus_dir} does not exist")
    manifests = lhotse_prepare(corpus_dir, dataset_parts=parts, output_dir=Path(out_dir) / "lhotse")
    return {part: export_cuts(cuts, Path(out_dir), part) for part, cuts in _cuts_from_parts(manifests).items()}


def prepare_tedlium(root: str | Path, out_dir: str | Path, parts: tuple[str, ...] = ("train", "dev", "test")) -> dict:
    """`root` is the unpacked `TEDLIUM_release-3/` folder (with `legacy/{train,dev,test}/{sph,stm}`)."""
    from lhotse.recipes import prepare_tedlium as lhotse_prepare

    root = Path(root)
    if not (root / "legacy").is_dir():
        raise FileNotFoundError(f"{root} is not a TED-LIUM v3 folder: {root / 'legacy'} does not exist")
    (Path(out_dir) / "lhotse").mkdir(parents=True, exist_ok=True)  # lhotse's recipe does not create it
    with _sphere_backend():
        manifests = lhotse_prepare(root, output_dir=Path(out_dir) / "lhotse", dataset_parts=list(parts))
    return {part: export_cuts(cuts, Path(out_dir), part) for part, cuts in _cuts_from_parts(manifests).items()}
