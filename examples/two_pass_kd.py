# Distil a two-pass model into a smaller one in three stages (Samsung, ASRU 2021), one config per stage:
#
#   python examples/two_pass_kd.py --config-name kd_rnnt       # 1: encoder + RNN-T from the teacher's lattice
#   python examples/two_pass_kd.py --config-name kd_rescorer   # 2: attention rescorer, encoder frozen
#   python examples/two_pass_kd.py --config-name kd_deep       # 3: deep finetuning
#
# Each stage starts from the previous stage's .nemo (model.kd.init_from) and resumes from its own last
# checkpoint when started again. The same as `nemo-encrl kd-rnnt | kd-rescorer | kd-deep`.

from omegaconf import DictConfig, OmegaConf

from nemo.core.config import hydra_runner
from nemo.utils import logging

from nemo_encrl.training import fit_two_pass_kd


@hydra_runner(config_path="../conf/two_pass", config_name="kd_rnnt")
def main(cfg: DictConfig) -> None:
    logging.info(f"Hydra config: {OmegaConf.to_yaml(cfg)}")
    fit_two_pass_kd(cfg)


if __name__ == "__main__":
    main()  # noqa pylint: disable=no-value-for-parameter
