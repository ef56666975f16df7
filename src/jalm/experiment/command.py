"""`jalm experiment NAME --out DIR`: reproduce one of the seed's claims at small scale, with a report and plots."""

from __future__ import annotations

import argparse
import shlex
import sys

EXAMPLE = """experiments:
  schedule   cosine vs inverse square root at the same peak LR: final loss, time at high LR, curves
  beta2      Adam β2 0.95 vs 0.999 at a high LR, spike guard off: loss spikes and divergence
  init       the seed's small_init (depth-scaled output projections) vs a flat std of 0.02
  filtering  a noisy web-like corpus before and after `jalm clean`: dev perplexity, repetitive generations
  all        the four above into DIR/<name>/ with one shared data cache

examples:
  jalm experiment schedule --out runs/exp/schedule
  jalm experiment all --out runs/exp                 # about 15 minutes per experiment on a free 2-core CPU
  jalm experiment beta2 --out /tmp/b2 --quick        # seconds: a smoke test of the whole pipeline
  jalm experiment init --out runs/exp/init --size full --device cuda --seeds 0,1,2,3,4
Rerunning a command reuses finished runs (DIR/runs/*/result.json) and the cached data (DIR/cache)."""


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("at least one seed is needed")
    return seeds


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experiment",
        help="reproduce the seed's claims (filtering, β2, init, schedule) at small scale",
        description=__doc__,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "name", choices=["schedule", "beta2", "init", "filtering", "all"], help="which experiment"
    )
    parser.add_argument(
        "--out", required=True, help="output directory (report.md, results.json, plots, runs/)"
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--size",
        choices=["quick", "default", "full"],
        default="default",
        help="quick: seconds (tests); default: ~15 min per experiment on 2 CPU cores; full: tiny preset",
    )
    size.add_argument(
        "--quick", dest="size", action="store_const", const="quick", help="same as --size quick"
    )
    parser.add_argument(
        "--cache", help="data cache directory, shareable between experiments (default OUT/cache)"
    )
    parser.add_argument(
        "--seeds", type=_seeds, help="comma-separated seeds (default: the size's, e.g. 0,1,2)"
    )
    parser.add_argument("--steps", type=int, help="optimizer steps per run (default: the size's)")
    parser.add_argument("--preset", help="model preset (default: the size's)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default: torch's choice; 1 is often "
        "faster on a CPU shared with other jobs)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jalm.errors import JalmError
    from jalm.experiment import run_all, run_experiment

    if args.steps is not None and args.steps < 1:
        raise JalmError(f"--steps must be at least 1, got {args.steps}")
    overrides = {"preset": args.preset, "steps": args.steps, "beta2_steps": args.steps}
    if args.seeds:
        overrides.update(seeds=args.seeds, filtering_seeds=args.seeds)
    command = shlex.join(["jalm", *sys.argv[1:]]) if sys.argv[1:2] == ["experiment"] else None
    progress = not args.no_progress
    if args.name == "all":
        path = run_all(
            args.out, args.size, args.cache, args.device, progress, command, args.threads, **overrides
        )
    else:
        path = run_experiment(
            args.name,
            args.out,
            args.size,
            args.cache,
            args.device,
            progress,
            command,
            args.threads,
            **overrides,
        )
    print(f"report: {path}")
    return 0
