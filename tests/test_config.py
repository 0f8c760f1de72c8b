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


def test_broken_yaml_is_named_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: {b: ${x.y}}\n")  # an unquoted interpolation inside a flow mapping
    with pytest.raises(ValueError, match=r"config .*bad.yaml: line 1, column \d+: not valid YAML"):
        load_config("demo", str(bad))


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


TRAINING_CONFIGS = [("teacher", "conformer_ctc_bpe_demo", "output_nemo"), ("encrl", "encrl_clip_mse", "output_nemo"),
                    ("finetune", "ctc_finetune", "output_dir"), ("two_pass", "conformer_rnnt_attention_demo", "output_nemo"),
                    ("two_pass", "kd_rnnt", "output_nemo"), ("two_pass", "kd_rescorer", "output_nemo"),
                    ("two_pass", "kd_deep", "output_nemo")]  # fmt: skip


@pytest.mark.parametrize("group, name, output", TRAINING_CONFIGS)
def test_training_configs_checkpoint_by_step_and_write_into_their_run_folder(group, name, output, tmp_path):
    """Two runs with different exp_dirs never overwrite one file; a checkpoint every N steps, not per epoch
    (an epoch of LibriSpeech-960 is ~90k steps)."""
    from omegaconf import OmegaConf

    cfg = load_config(group, name, [f"exp_manager.exp_dir={tmp_path}/one"])
    assert str(OmegaConf.select(cfg, output)).startswith(f"{tmp_path}/one")
    assert isinstance(cfg.trainer.val_check_interval, int) and cfg.trainer.check_val_every_n_epoch is None


def test_a_run_shorter_than_the_validation_interval_still_validates_at_its_end():
    from omegaconf import OmegaConf

    from nemo_encrl.training import clamp_validation

    cfg = OmegaConf.create({"trainer": {"val_check_interval": 500, "max_steps": 120}})
    clamp_validation(cfg)
    assert cfg.trainer.val_check_interval == 120
    for trainer in ({"val_check_interval": 500, "max_steps": 9000}, {"val_check_interval": 1.0, "max_steps": 10}):
        cfg = OmegaConf.create({"trainer": dict(trainer)})
        clamp_validation(cfg)
        assert cfg.trainer.val_check_interval == trainer["val_check_interval"]
