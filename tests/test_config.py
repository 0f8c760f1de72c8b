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


def test_lhotse_runs_bounded_by_time_or_epochs_get_max_steps():
    """lhotse loaders have no length: NeMo's scheduler needs max_steps even when time or epochs bound the run."""
    from nemo_encrl.training import UNBOUNDED_STEPS, bound_steps

    cfg = load_config("finetune", "ctc_finetune", ["trainer.max_epochs=5", "trainer.max_steps=-1"])
    bound_steps(cfg)
    assert cfg.trainer.max_steps == UNBOUNDED_STEPS
    cfg = load_config("encrl", "encrl_clip_mse", ["trainer.max_steps=-1", "+trainer.max_time=00:00:01:00"])
    bound_steps(cfg)
    assert cfg.trainer.max_steps == UNBOUNDED_STEPS
    cfg = load_config("encrl", "encrl_clip_mse", ["trainer.max_steps=-1"])
    with pytest.raises(ValueError, match="set trainer.max_steps"):
        bound_steps(cfg)
    cfg = load_config("encrl", "encrl_clip_mse", ["trainer.max_steps=-1", "trainer.max_epochs=3",
                                                  "model.optim.sched.name=CosineAnnealing"])
    with pytest.raises(ValueError, match="the CosineAnnealing schedule needs the total step count"):
        bound_steps(cfg)
    cfg = load_config("encrl", "encrl_clip_mse", ["trainer.max_steps=500"])
    bound_steps(cfg)
    assert cfg.trainer.max_steps == 500
