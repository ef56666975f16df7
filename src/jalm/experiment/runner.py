"""Entry points: run one experiment, or all four sharing one data cache, and write the reports."""

from __future__ import annotations

import shlex
from contextlib import contextmanager
from pathlib import Path

from jalm.errors import JalmError
from jalm.io import write_atomic

NAMES = ("schedule", "beta2", "init", "filtering")  # the order `all` runs them in (cheapest verdicts first)
MODULES = {"schedule": "schedule", "beta2": "beta2", "init": "initialisation", "filtering": "filtering"}


def default_command(name: str, out: str | Path, size: str) -> str:
    return shlex.join(
        ["jalm", "experiment", name, "--out", str(out)] + ([] if size == "default" else ["--size", size])
    )


@contextmanager
def torch_threads(threads: int | None):
    """Use `threads` CPU threads inside the block (None: leave torch's choice), then restore the setting.

    On a CPU shared with other jobs, one thread per process can be many times faster than two: small
    matrix products spend their time waiting for the busy second core.
    """
    import torch

    if threads is None:
        yield
        return
    if threads < 1:
        raise JalmError(f"--threads must be at least 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_experiment(
    name: str,
    out: str | Path,
    size: str = "default",
    cache: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    command: str | None = None,
    threads: int | None = None,
    **overrides,
) -> Path:
    """Run experiment `name` into `out` (report.md, results.json, plots, runs/); returns the report's path.

    `cache` (default OUT/cache) holds the cleaned, tokenized and packed data, reused by every experiment
    pointed at it. `overrides` change fields of the size (see jalm.experiment.scale.Scale), e.g. seeds=(0, 1).
    """
    import importlib

    from jalm.experiment.common import Context
    from jalm.experiment.scale import get_scale
    from jalm.model import get_preset

    if name not in MODULES:
        raise JalmError(f"unknown experiment {name!r}; choose {', '.join(NAMES)} or all")
    scale = get_scale(size, **overrides)
    get_preset(scale.preset)  # an unknown preset fails now, not after the data is prepared
    if not scale.seeds or not scale.filtering_seeds:
        raise JalmError("at least one seed is needed")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        out=out,
        cache=Path(cache) if cache else out / "cache",
        scale=scale,
        command=command or default_command(name, out, size),
        device=device,
        progress=progress,
    )
    with torch_threads(threads):
        report = importlib.import_module(f"jalm.experiment.{MODULES[name]}").run(ctx)
        import torch

        report.setup.append(f"torch CPU threads: {torch.get_num_threads()}")
    return report.write(out)


def run_all(
    out: str | Path,
    size: str = "default",
    cache: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    command: str | None = None,
    threads: int | None = None,
    **overrides,
) -> Path:
    """All four experiments into OUT/<name>/ with one shared cache (default OUT/cache); an index in OUT/report.md."""
    import json

    out = Path(out)
    cache = Path(cache) if cache else out / "cache"
    lines = [
        "# jalm experiments: the seed's claims at small scale",
        "",
        f"Command: `{command or default_command('all', out, size)}`",
        "",
    ]
    for name in NAMES:
        path = run_experiment(name, out / name, size, cache, device, progress, command, threads, **overrides)
        results = json.loads((path.parent / "results.json").read_text(encoding="utf-8"))
        lines += [f"## [{results['title']}]({name}/report.md)", ""]
        lines += [f"- {f['claim']}: **{f['status']}** — {f['measured']}" for f in results["findings"]] + [""]
    write_atomic(out / "report.md", "\n".join(lines))
    return out / "report.md"
