"""Experiment trackers (TensorBoard, Weights & Biases, MLflow) fed exactly the records of metrics.jsonl.

`--trackers tensorboard,wandb,mlflow` (any of them; `--tensorboard` still means `tensorboard`). Only the
main process logs. Every number of a record is logged at the record's step: training records, validation
records and the guard's events (as `event/<action>/<key>`, as TensorBoard always had them). The run's
configuration (what run.json holds) is logged once, when the tracker's run is created.

Nothing reaches the network unless asked: W&B runs offline (in OUT/wandb; `wandb sync` uploads it) unless
WANDB_MODE is set, and MLflow writes a file store in OUT/mlflow unless MLFLOW_TRACKING_URI or
`--mlflow-tracking-uri` names another. W&B and MLflow are optional extras (`jalm[wandb]`, `jalm[mlflow]`).

Resuming: the W&B run id and the MLflow run id are kept in OUT/trackers.json with the last step each
tracker got, so a resumed run continues the same tracker run. Steps a tracker already has are not sent
again (a resumed run redoes the steps after its checkpoint with the same losses), and records a tracker
lacks, e.g. one added on resume, are caught up from metrics.jsonl. TensorBoard keeps its own rule: events
past the checkpoint are purged and rewritten.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from jalm.errors import JalmError

TRACKERS = ("tensorboard", "wandb", "mlflow")
# tracker → (module that must import, the extra that installs it)
PACKAGES = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
}
STATE_FILE = "trackers.json"
DEFAULT_PROJECT = "jalm"


def tracker_names(trackers: str, tensorboard: bool = False) -> list[str]:
    """The trackers a config asks for, in order, without repeats; unknown names are an error."""
    names = ["tensorboard"] if tensorboard else []
    for name in (part.strip().lower() for part in trackers.split(",")):
        if not name:
            continue
        if name not in TRACKERS:
            raise JalmError(f"unknown tracker {name!r}; choose from {', '.join(TRACKERS)}")
        if name not in names:
            names.append(name)
    return names


def missing_package_error(name: str) -> JalmError:
    module, extra = PACKAGES[name]
    flag = "--tensorboard" if name == "tensorboard" else f"--trackers {name}"
    return JalmError(f"{flag} needs the {module} package: pip install 'jalm[{extra}]'")


def check_installed(names: Iterable[str]) -> None:
    """Fail at once, in one line naming the extra, when a tracker's package is not installed."""
    for name in names:
        module = PACKAGES[name][0]
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise missing_package_error(name)


def numbers(record: dict) -> dict[str, float]:
    """The numbers of a metrics.jsonl record (not its step), keyed as every tracker logs them."""
    prefix = f"event/{record['event']}/" if "event" in record else ""
    return {
        prefix + key: value
        for key, value in record.items()
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    """Nested settings as `a.b.c` keys (MLflow parameters are flat)."""
    flat: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class TrackerState:
    """OUT/trackers.json: per tracker, the identity of its run and the last step it was sent."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / STATE_FILE
        self.data = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}

    def entry(self, name: str, identity: dict) -> dict | None:
        """The saved entry of `name` if it belongs to the same project/store, else None."""
        entry = self.data.get(name)
        if entry and all(entry.get(key) == value for key, value in identity.items()):
            return entry
        return None

    def save(self) -> None:
        # Saved after every logged step: renamed into place (never torn), but not fsynced each time.
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


class Tracker:
    """One destination of the metrics."""

    name = ""

    def log(self, record: dict) -> None:
        raise NotImplementedError

    def catch_up(self, records: list[dict]) -> None:
        """Given, on resume, the records metrics.jsonl keeps from earlier processes."""

    def close(self) -> None:
        pass


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, log_dir: Path, resumed_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise missing_package_error("tensorboard") from None
        # Events from step `purge_step` on, which an earlier process logged past its last checkpoint, are
        # dropped; the checkpoint's own step is kept (metrics.jsonl keeps it too).
        purge_step = None if resumed_step is None else resumed_step + 1
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    def log(self, record: dict) -> None:
        for key, value in numbers(record).items():
            self.writer.add_scalar(key, value, record["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _ResumableTracker(Tracker):
    """Sends each step once: not the steps an earlier process sent (≤ floor), not a step below the last."""

    def _open_state(self, state: TrackerState, identity: dict) -> dict | None:
        self.state = state
        previous = state.entry(self.name, identity)
        # Steps start at 0 (instruction tuning logs the base model's validation loss there).
        self.floor = self.high = previous["step"] if previous else -1
        return previous

    def log(self, record: dict, save: bool = True) -> None:
        step = record["step"]
        if step <= self.floor or step < self.high:
            return
        values = numbers(record)
        if values:
            self._send(step, values)
        if step > self.high:
            self.high = step
            self.state.data[self.name]["step"] = step
            if save:
                self.state.save()

    def catch_up(self, records: list[dict]) -> None:
        """Send what an earlier process logged but this tracker lacks (e.g. it was added on resume)."""
        for record in records:
            self.log(record, save=False)
        self.state.save()

    def _send(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError


class WandbTracker(_ResumableTracker):
    name = "wandb"

    def __init__(self, run_dir: Path, state: TrackerState, project: str, run_name: str, config: dict):
        try:
            import wandb
        except ImportError:
            raise missing_package_error("wandb") from None
        previous = self._open_state(state, {"project": project})
        run_id = previous["id"] if previous else uuid.uuid4().hex[:8]
        settings = {"console": "off", "silent": True, "disable_git": True, "reinit": "finish_previous"}
        if not os.environ.get("WANDB_MODE"):
            settings["mode"] = "offline"
        self.run = wandb.init(
            project=project,
            name=run_name,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            config=None if previous else config,
            settings=wandb.Settings(**settings),
        )
        state.data[self.name] = {"id": run_id, "project": project, "step": self.high}
        state.save()
        if self.run.settings.mode == "offline":
            print(
                f"W&B run {run_id} is offline in {run_dir / 'wandb'}; upload it with "
                f"`wandb sync {run_dir / 'wandb'}/offline-run-*-{run_id}`",
                file=sys.stderr,
            )

    def _send(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


# Metrics that also have per-source variants ("tokens" and "tokens/c4" for a mixture's source "c4").
PER_SOURCE = ("tokens", "epochs", "val_loss")


def mlflow_key(key: str) -> str:
    """MLflow's file store keeps a metric as a file named by its key, so "tokens" and "tokens/c4" cannot
    both exist: a per-source key is sent as "tokens.c4" there (other trackers keep the "/")."""
    head, slash, rest = key.partition("/")
    return f"{head}.{rest}" if slash and head in PER_SOURCE else key


class MlflowTracker(_ResumableTracker):
    name = "mlflow"

    def __init__(
        self,
        run_dir: Path,
        state: TrackerState,
        project: str,
        run_name: str,
        config: dict,
        tracking_uri: str | None = None,
    ):
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlflow").resolve().as_uri()
        if uri.startswith("file:"):
            # MLflow 3 keeps the file store in maintenance mode and refuses it unless asked; it is what
            # needs no server and no database, so jalm asks for it (a user's own setting wins).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            from mlflow.entities import Metric, Param, RunStatus
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise missing_package_error("mlflow") from None
        self.Metric = Metric
        self.client = client = MlflowClient(tracking_uri=uri)
        previous = self._open_state(state, {"uri": uri, "experiment": project})
        self.run_id = None
        if previous:
            try:
                client.get_run(previous["run_id"])
                self.run_id = previous["run_id"]
                client.update_run(self.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            except MlflowException:  # the run was deleted from the store: start a new one
                self.floor = self.high = -1
        if self.run_id is None:
            experiment = client.get_experiment_by_name(project)
            experiment_id = experiment.experiment_id if experiment else client.create_experiment(project)
            run = client.create_run(experiment_id, run_name=run_name, tags={"jalm.run_dir": str(run_dir)})
            self.run_id = run.info.run_id
            params = [Param(key, str(value)[:6000]) for key, value in flatten(config).items()]
            for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters a batch
                client.log_batch(self.run_id, params=params[start : start + 100])
        state.data[self.name] = {"run_id": self.run_id, "uri": uri, "experiment": project, "step": self.high}
        state.save()

    def _send(self, step: int, values: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        metrics = [self.Metric(mlflow_key(key), float(value), now, step) for key, value in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        self.client.set_terminated(self.run_id, "FINISHED")


def open_trackers(
    cfg,
    run_dir: Path,
    resumed_step: int,
    config: dict,
) -> list[Tracker]:
    """The trackers `cfg` asks for, opened on run_dir (call on the main process only)."""
    run_dir = Path(run_dir)
    names = tracker_names(cfg.trackers, cfg.tensorboard)
    check_installed(names)
    project = cfg.tracker_project or DEFAULT_PROJECT
    run_name = cfg.tracker_run_name or run_dir.resolve().name
    state = TrackerState(run_dir)
    opened: list[Tracker] = []
    try:
        for name in names:
            if name == "tensorboard":
                opened.append(TensorBoardTracker(run_dir / "tensorboard", resumed_step))
            elif name == "wandb":
                opened.append(WandbTracker(run_dir, state, project, run_name, config))
            else:
                opened.append(
                    MlflowTracker(run_dir, state, project, run_name, config, cfg.mlflow_tracking_uri)
                )
    except BaseException:
        for tracker in opened:
            tracker.close()
        raise
    return opened
