"""`nemo-encrl two-pass-bench`: the three-stage distillation of a two-pass teacher, stage by stage, against the
same student architecture trained from scratch at equal compute (conf/two_pass_bench/)."""

from nemo_encrl.two_pass_bench.run import run_two_pass_bench

__all__ = ["run_two_pass_bench"]
