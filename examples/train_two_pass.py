# Train a two-pass model (streaming RNN-T first pass + attention rescorer on one Conformer encoder), as NeMo's
# speech_to_text_rnnt_bpe.py trains an RNN-T model:
#
#   python examples/train_two_pass.py trainer.max_steps=2000
#
# The encoder starts from init_streaming_from (a streaming CTC model: nemo-encrl teacher --config
# streaming_ctc_finetune). Started again with the same
# exp_manager settings, it resumes from the last checkpoint. Then choose the rescoring weights on dev:
#   nemo-encrl two-pass-tune runs/two_pass/two_pass_teacher.nemo data/corpus/bench/dev_manifest.json

from omegaconf import DictConfig, OmegaConf

from nemo.core.config import hydra_runner
from nemo.utils import logging

from nemo_encrl.training import fit_two_pass


@hydra_runner(config_path="../conf/two_pass", config_name="conformer_rnnt_attention_demo")
def main(cfg: DictConfig) -> None:
    logging.info(f"Hydra config: {OmegaConf.to_yaml(cfg)}")
    fit_two_pass(cfg)


if __name__ == "__main__":
    main()  # noqa pylint: disable=no-value-for-parameter
