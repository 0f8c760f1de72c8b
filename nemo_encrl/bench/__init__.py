"""`nemo-encrl bench`: EncRL students against a regularised scratch baseline at equal compute.

plan (what runs), budget (step budgets from measured step costs), cost (measuring them), settings
(reuse only under the same settings), run (training, resumable), measure (WER, size, speed),
accounting (curves in compute), report and plots.
"""

from nemo_encrl.bench.plan import BenchConfigError, Job, plan_jobs, sweep_jobs
from nemo_encrl.bench.run import all_jobs, run_bench
from nemo_encrl.bench.settings import StaleRunError

__all__ = ["BenchConfigError", "Job", "StaleRunError", "all_jobs", "plan_jobs", "run_bench", "sweep_jobs"]
