"""Sharded, atomic checkpoints with torch.distributed.checkpoint (DCP).

Layout: RUN_DIR/checkpoints/step_00000200/{*.distcp, .metadata, train_state.json}. Each rank writes its
own shards into a hidden temporary directory; only when every shard and the train state are on disk
does rank 0 rename it to its final name. A crash or a full disk mid-save leaves a `.tmp-*` directory
that is never loaded (and is cleared on the next save), so the previous checkpoint stays usable.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from jalm.errors import JalmError
from jalm.train.distributed import barrier

STATE_FILE = "train_state.json"
PREFIX = "step_"


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a directory counts only once renamed with its state file)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / STATE_FILE).exists()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict,
    is_main: bool,
    keep_last: int,
    frozen: bool = False,
) -> Path:
    """Save weights, optimizer state and `state`; with `frozen`, only the trainable weights (LoRA)."""
    pending = begin_save(
        run_dir, step, model, optimizer, state, is_main, keep_last, frozen, asynchronous=False
    )
    return commit_save(pending)


def begin_save(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict,
    is_main: bool,
    keep_last: int,
    frozen: bool = False,
    asynchronous: bool = False,
) -> dict:
    """Write the shards into `.tmp-step_N` (with `asynchronous`, DCP's async_save: the state is staged
    to CPU memory, then written by a background thread while training goes on). `commit_save` renames."""
    root = checkpoint_dir(run_dir)
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f".tmp-{PREFIX}{step:08d}"
    if is_main:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
    barrier()
    model_state, optim_state = _state_dicts(model, optimizer, frozen)
    future = None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*assuming the intent is to save in a single process.*")
        if asynchronous:
            future = dcp.async_save(
                {"model": model_state, "optim": optim_state}, checkpoint_id=tmp, process_group=_save_group()
            )
        else:
            dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=tmp)
    return {
        "future": future,
        "tmp": tmp,
        "final": final,
        "run_dir": run_dir,
        "state": state,
        "is_main": is_main,
        "keep_last": keep_last,
    }


def save_done(pending: dict) -> bool:
    """Whether this rank's part of the write has finished (no waiting)."""
    return pending["future"] is None or pending["future"].done()


def commit_save(pending: dict) -> Path:
    """Wait for the shards, then (rank 0) write the train state and rename `.tmp-step_N` into place.
    Collective: every rank calls it at the same point."""
    if pending["future"] is not None:
        pending["future"].result()
    barrier()
    tmp, final, root = pending["tmp"], pending["final"], pending["final"].parent
    if pending["is_main"]:
        with open(tmp / STATE_FILE, "w", encoding="utf-8") as handle:
            json.dump(pending["state"], handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        _fsync_dir(root)
        keep_last = pending["keep_last"]
        for old in list_checkpoints(pending["run_dir"])[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


_SAVE_GROUP: list = []


def _save_group():
    """A gloo group of its own for asynchronous saves: the writer thread's collectives must not
    interleave with the training's on the default group."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return None
    if not _SAVE_GROUP:
        _SAVE_GROUP.append(dist.new_group(backend="gloo"))
    return _SAVE_GROUP[0]


def read_state(path: Path) -> dict:
    try:
        return json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise JalmError(f"{path / STATE_FILE}: unreadable checkpoint state ({error})") from None


def _options(frozen: bool) -> StateDictOptions:
    # LoRA: the frozen base is not saved (it is reloaded from its source), so loading is not strict.
    return StateDictOptions(ignore_frozen_params=True, strict=False) if frozen else StateDictOptions()


def _state_dicts(model: torch.nn.Module, optimizer, frozen: bool) -> tuple[dict, dict | None]:
    """Model and optimizer state dicts; with `frozen`, the model's only has trainable weights (a tied,
    frozen output embedding would otherwise come along under its second name)."""
    if optimizer is None:
        model_state, optim_state = get_state_dict(model, [], options=_options(frozen))[0], None
    else:
        model_state, optim_state = get_state_dict(model, optimizer, options=_options(frozen))
    if frozen:
        trainable = {name for name, param in model.named_parameters() if param.requires_grad}
        model_state = {name: value for name, value in model_state.items() if name in trainable}
    return model_state, optim_state


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, frozen: bool = False
) -> dict:
    """Load weights (and optimizer state) in place; return the train state. Bad files → one-line error."""
    state = read_state(path)
    options = _options(frozen)
    model_state, optim_state = _state_dicts(model, optimizer, frozen)
    target = {"model": model_state} if optim_state is None else {"model": model_state, "optim": optim_state}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*assuming the intent is to load in a single process.*"
            )
            dcp.load(target, checkpoint_id=path)
    except (Exception, CheckpointException) as error:  # DCP's CheckpointException is a BaseException
        if isinstance(error, CheckpointException) and error.failures:
            error = next(iter(error.failures.values()))
            error = error[0] if isinstance(error, tuple) else error  # (exception, traceback) pairs
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise JalmError(f"{path}: checkpoint cannot be loaded ({first[:200]})") from None
    if optimizer is not None:
        set_state_dict(
            model,
            optimizer,
            model_state_dict=target["model"],
            optim_state_dict=target["optim"],
            options=options,
        )
    else:
        set_state_dict(model, [], model_state_dict=target["model"], optim_state_dict={}, options=options)
    return state
