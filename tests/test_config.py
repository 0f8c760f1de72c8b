import pytest

from nemo_encrl.config import load_config


def test_overrides_like_hydra():
    cfg = load_config("teacher", "conformer_ctc_bpe_demo", ["model.optim.lr=0.5", "trainer.max_steps=7",
                                                            "+trainer.max_time=00:00:01:00", "~model.test_ds"])
    assert cfg.model.optim.lr == 0.5 and cfg.trainer.max_steps == 7
    assert cfg.trainer.max_time == "00:00:01:00"
    assert "test_ds" not in cfg.model


def test_unknown_key_is_named():
    with pytest.raises(KeyError, match="model.optim.lrr"):
        load_config("teacher", "conformer_ctc_bpe_demo", ["model.optim.lrr=1"])


def test_unknown_config_lists_known():
    with pytest.raises(FileNotFoundError, match="conformer_ctc_bpe_demo"):
        load_config("teacher", "nope")
