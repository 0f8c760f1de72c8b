"""LibriSpeech / TED-LIUM preparation through lhotse's recipes, on tiny folders in the real layouts."""

import numpy as np
import pytest
import soundfile as sf

from nemo_encrl.data.manifest import validate_manifest
from nemo_encrl.data.real_corpora import normalize_transcript, prepare_librispeech, prepare_tedlium


def _tone(seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_normalize_transcript():
    assert normalize_transcript("IT 'S A <unk> TEST, ISN'T IT") == "it's a test isn't it"
    assert normalize_transcript("{NOISE} hello (um) world") == "hello world"


def test_librispeech_layout(tmp_path):
    root = tmp_path / "LibriSpeech"
    chapter = root / "dev-clean" / "1272" / "128104"
    chapter.mkdir(parents=True)
    texts = {"1272-128104-0000": "MISTER QUILTER IS THE APOSTLE", "1272-128104-0001": "NOR IS MISTER QUILTER'S MANNER"}
    for i, uid in enumerate(texts):
        sf.write(chapter / f"{uid}.flac", _tone(1.0 + i), 16000)
    (chapter / "1272-128104.trans.txt").write_text("".join(f"{k} {v}\n" for k, v in texts.items()))

    result = prepare_librispeech(root, tmp_path / "out")
    rows = validate_manifest(result["dev-clean"]["manifest"], sample_rate=16000)
    assert sorted(r["text"] for r in rows) == ["mister quilter is the apostle", "nor is mister quilter's manner"]
    assert sorted(r["duration"] for r in rows) == [1.0, 2.0]
    assert all(r["speaker"] == "1272" for r in rows)
    from lhotse import CutSet

    assert len(CutSet.from_file(result["dev-clean"]["cuts"])) == 2


def test_tedlium_layout_segments_become_offsets(tmp_path):
    root = tmp_path / "TEDLIUM_release-3"
    for part in ("sph", "stm"):
        (root / "legacy" / "dev" / part).mkdir(parents=True)
    sf.write(root / "legacy" / "dev" / "sph" / "Talk1.sph", _tone(6.0), 16000, format="NIST", subtype="PCM_16")
    (root / "legacy" / "dev" / "stm" / "Talk1.stm").write_text(
        "Talk1 1 Talk1 0.50 2.50 <o,f0,male> so it 's a talk\n"
        "Talk1 1 inter_segment_gap 2.50 3.00 <o,,unknown> ignore_time_segment_in_scoring\n"
        "Talk1 1 Talk1 3.00 5.50 <o,f0,male> about <unk> things\n"
    )
    result = prepare_tedlium(root, tmp_path / "out", parts=("dev",))
    rows = validate_manifest(result["dev"]["manifest"], sample_rate=16000)
    assert [(r["offset"], r["duration"], r["text"]) for r in sorted(rows, key=lambda r: r["offset"])] == [
        (0.5, 2.0, "so it's a talk"),
        (3.0, 2.5, "about things"),
    ]


def test_missing_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="LibriSpeech directory"):
        prepare_librispeech(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="not a TED-LIUM v3 folder"):
        prepare_tedlium(tmp_path, tmp_path / "out")
