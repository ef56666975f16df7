"""`jalm train`: every TrainConfig field is a flag; the run directory makes a rerun resume."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

EXAMPLE = """examples:
  jalm train --preset tiny --data runs/demo/packed --out runs/demo/train --max-steps 500 --compile
  jalm train --preset 1.7b --data c4=packed/c4:0.4 cc100=packed/cc100:0.3 crawl=packed/crawl:0.3 --out runs/mix
  torchrun --nproc_per_node=8 --max-restarts=3 --no-python jalm train --preset 1.7b --data packed --out runs/1.7b
Rerunning the same command resumes from the run directory's latest checkpoint. SIGTERM or SIGUSR1 on any
rank: the step in flight finishes, a checkpoint is written, and the run exits with code 75 (requeue me).
--max-restarts lets torchrun restart the workers of a node after a crash; they resume the same way."""

# The switches, which have no default worth printing.
SWITCH_HELP = {
    "compile": "torch.compile the model and loss as one graph: ~1.4x the eager tokens/s for `tiny` on CPU, after a "
    "30-90 s start (a C++ compiler is needed on CPU); pays for runs longer than a few minutes",
    "activation_checkpointing": "recompute each block's activations in the backward pass (default: the plan "
    "turns it on only when the run does not fit in memory without it)",
    "tensorboard": "also log to OUT/tensorboard",
}
# Settings whose help says more than their default.
FLAG_HELP = {
    "trackers": "also log metrics to experiment trackers, comma-separated: tensorboard, wandb, mlflow "
    "(W&B offline in OUT/wandb unless WANDB_MODE is set; MLflow to a file store in OUT/mlflow)",
    "tracker_project": "W&B project / MLflow experiment (default: jalm)",
    "tracker_run_name": "the trackers' run name (default: the run directory's name)",
    "mlflow_tracking_uri": "MLflow tracking URI (default: MLFLOW_TRACKING_URI, else file:OUT/mlflow)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    from jalm.model.presets import PRESETS

    parser = subparsers.add_parser(
        "train",
        help="pretrain a model with the LINE recipe",
        description=__doc__,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--preset",
        help=", ".join(PRESETS)
        + "; or a model directory (its architecture). Default with --init-from DIR: DIR",
    )
    parser.add_argument(
        "--data",
        required=True,
        nargs="+",
        metavar="[NAME=]DIR[:WEIGHT]",
        help="packed directory from `jalm pack`, or several with weights to mix (windows are drawn in "
        "proportion to the weights; a weight above a source's share of the tokens repeats it), or a "
        'mixture file MIX.json: {"NAME": {"path": DIR, "weight": W}, ...}',
    )
    parser.add_argument("--out", required=True, help="run directory (checkpoints, metrics.jsonl, loss.png)")
    parser.add_argument("--config", help="JSON file of training settings (flags override it)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--parallel",
        default="auto",
        choices=["auto", "none", "ddp", "fsdp", "hsdp"],
        help="multi-process mode (auto: DDP below 500M parameters, else FSDP2, HSDP when the run spans nodes)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="train on a packed directory whose `jalm pack` run did not complete (refused by default)",
    )
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (1 is often faster on a CPU other jobs also use)"
    )
    plan = parser.add_argument_group(
        "the plan (`--plan`: print it and stop; a run checks it before allocating)"
    )
    plan.add_argument(
        "--plan", action="store_true", help="print parameters, memory per device, tokens, time; stop"
    )
    plan.add_argument("--gpus", type=int, help="processes (GPUs) to plan for (default: WORLD_SIZE, else 1)")
    plan.add_argument(
        "--gpu",
        help="GPU to plan for: H100, H100 PCIe, H100 NVL, H200, A100, A100-40GB, L40S, L4, A10, ... or NAME:GIB",
    )
    plan.add_argument(
        "--gpus-per-node", type=int, default=8, help="GPUs per node, for the communication (default: 8)"
    )
    plan.add_argument(
        "--mfu", type=float, default=0.4, help="model FLOPs utilisation for the time (default: 0.4)"
    )
    add_config_flags(parser)
    parser.set_defaults(func=run)


def add_config_flags(parser: argparse.ArgumentParser, defaults: dict | None = None, skip: tuple = ()) -> None:
    """One flag per TrainConfig field (but `preset`, `extra` and `skip`), its help showing the default."""
    from jalm.train.config import TrainConfig

    defaults = defaults or {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("preset", "extra", *skip):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=SWITCH_HELP.get(f.name)
            )
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" ")[0], float)
            default = defaults.get(f.name, f.default)
            text = FLAG_HELP.get(f.name, f"default: {default}")
            parser.add_argument(flag, type=kind, default=None, help=text)


def config_overrides(args: argparse.Namespace) -> dict:
    """The TrainConfig fields given on the command line (and in --config FILE, which flags override)."""
    from jalm.train.config import TrainConfig

    overrides = {}
    if getattr(args, "config", None):
        overrides.update(TrainConfig.load(args.config).__dict__)
        overrides.pop("preset", None)
    names = {f.name for f in dataclasses.fields(TrainConfig)} - {"preset", "extra"}
    overrides.update({name: getattr(args, name) for name in names if getattr(args, name, None) is not None})
    return overrides


def run(args: argparse.Namespace) -> int:
    from jalm.data import parse_sources
    from jalm.errors import JalmError
    from jalm.io import refuse_incomplete
    from jalm.train.config import default_config
    from jalm.train.loop import train
    from jalm.train.plan import check_fits, describe_communication, plan_for_run

    overrides = config_overrides(args)
    data = parse_sources(args.data)
    for source in data if not args.plan else []:
        if not source.path.is_dir():
            raise JalmError(f"{source.path}: no such directory; run `jalm pack` first")
    refuse_incomplete([source.path for source in data], args.allow_incomplete)
    preset = args.preset or overrides.get("init_from")
    if not preset:
        raise JalmError("jalm train: give --preset NAME, or --init-from MODEL_DIR to continue pretraining it")
    cfg = default_config(preset, **overrides)
    # --gpus and --gpu only plan; a run checks itself against this machine's device and WORLD_SIZE.
    gpus, gpu = (args.gpus, args.gpu) if args.plan else (None, None)
    plan = plan_for_run(cfg, data, args.device, args.parallel, gpus, gpu, args.mfu)
    checkpointing = "set by --activation-checkpointing"
    if "activation_checkpointing" not in overrides:
        # The plan decides: recompute activations only when the run does not fit without (it costs
        # ~20-25 % of the throughput); --activation-checkpointing / --no-... override it.
        cfg.activation_checkpointing = False
        plan = plan_for_run(cfg, data, args.device, args.parallel, gpus, gpu, args.mfu)
        checkpointing = "off: fits without it"
        if not plan.fits:
            cfg.activation_checkpointing = True
            plan = plan_for_run(cfg, data, args.device, args.parallel, gpus, gpu, args.mfu)
            checkpointing = "on: does not fit without it"
    if args.plan:
        print(plan.describe())
        state = "on" if cfg.activation_checkpointing else "off"
        print(f"activation checkpointing: {state} ({checkpointing.split(': ', 1)[-1]})")
        print(describe_communication(plan, args.gpus_per_node))
    check_fits(plan)  # a run that clearly cannot fit stops here, before anything is allocated
    if args.plan:
        return 0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    summary = train(
        cfg, data, args.out, device=args.device, parallel=args.parallel, progress=not args.no_progress
    )
    if summary.get("preempted"):
        from jalm.train.distributed import REQUEUE_EXIT

        print(
            f"jalm train: stopped on {summary['preempted']} at step {summary['steps']}, checkpoint written; "
            f"exit {REQUEUE_EXIT} asks for a requeue (rerun the same command to continue)",
            file=sys.stderr,
        )
        return REQUEUE_EXIT
    if summary:
        print(json.dumps(summary))
    return 0
