"""`jalm experiment`: the seed's claims (data filtering, Adam β2, init, LR schedule) reproduced at small scale.

    from jalm.experiment import run_experiment
    report = run_experiment("schedule", "runs/exp-schedule", size="default")

Each experiment trains a small grid of ordinary `jalm train` runs (one directory each under DIR/runs),
reads the numbers back from their metrics and writes DIR/report.md, DIR/results.json and PNG plots.
"""

from jalm.experiment.runner import NAMES, run_all, run_experiment

__all__ = ["NAMES", "run_all", "run_experiment"]
