import json

import numpy as np
import pytest
import soundfile as sf

from nemo_encrl.data.manifest import ManifestError, validate_manifest, write_manifest


@pytest.fixture
def wav16k(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000)
    return path


def test_valid_manifest_with_relative_path(tmp_path, wav16k):
    m = write_manifest(tmp_path / "m.json", [{"audio_filepath": "a.wav", "duration": 0.1, "text": "hi there"}])
    assert len(validate_manifest(m, sample_rate=16000)) == 1


def test_missing_audio_is_named(tmp_path):
    m = write_manifest(tmp_path / "m.json", [{"audio_filepath": str(tmp_path / "gone.wav"), "duration": 1, "text": "x"}])
    with pytest.raises(ManifestError, match=r"m\.json:1: audio file .*gone\.wav does not exist"):
        validate_manifest(m)


def test_empty_text_is_named(tmp_path, wav16k):
    rows = [{"audio_filepath": str(wav16k), "duration": 0.1, "text": "ok"}, {"audio_filepath": str(wav16k), "duration": 0.1, "text": "  "}]
    m = write_manifest(tmp_path / "m.json", rows)
    with pytest.raises(ManifestError, match=r"m\.json:2: empty 'text'"):
        validate_manifest(m)


def test_wrong_sample_rate_is_named(tmp_path):
    wav = tmp_path / "b.wav"
    sf.write(wav, np.zeros(800, dtype=np.float32), 8000)
    m = write_manifest(tmp_path / "m.json", [{"audio_filepath": str(wav), "duration": 0.1, "text": "x"}])
    with pytest.raises(ManifestError, match=r"b\.wav has sample rate 8000 Hz, the model expects 16000 Hz"):
        validate_manifest(m, sample_rate=16000)


def test_missing_key_and_bad_json(tmp_path):
    m = write_manifest(tmp_path / "m.json", [{"audio_filepath": "a.wav", "text": "x"}])
    with pytest.raises(ManifestError, match="missing key 'duration'"):
        validate_manifest(m, check_audio=False)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": 1}) + "\n{not json\n")
    with pytest.raises(ManifestError, match=r"bad\.json:2: not a JSON line"):
        validate_manifest(bad)
