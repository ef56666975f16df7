"""Samplers and mixtures: arithmetic permutations, weighted draws, exact resume, per-source accounting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jalm.data import MixtureSampler, SequenceSampler, parse_sources, read_meta
from jalm.data.permute import permute, round_keys
from jalm.data.sampler import block_counts
from jalm.errors import JalmError
from jalm.train import checkpoint as ckpt
from jalm.train.metrics import read_metrics


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_permutation_is_a_bijection_and_depends_on_its_keys(n):
    order = permute(np.arange(n), n, round_keys(5, 0, 0))
    assert sorted(order.tolist()) == list(range(n))
    if n >= 64:
        assert order.tolist() != list(range(n))
        assert order.tolist() != permute(np.arange(n), n, round_keys(5, 0, 1)).tolist()
    # Any position alone gives the element the whole order has there.
    picks = np.array([n - 1, 0, n // 2])
    assert permute(picks, n, round_keys(5, 0, 0)).tolist() == order[picks].tolist()


def test_sequence_sampler_visits_every_window_once_per_epoch_and_resumes():
    sampler = SequenceSampler(num_windows=101, seed=3)
    first = sampler.take(150).tolist()
    assert sorted(first[:101]) == list(range(101)) and len(set(first[101:])) == 49
    resumed = SequenceSampler(num_windows=101, seed=3, position=60)
    assert resumed.take(90).tolist() == first[60:]


def test_a_075_025_mixture_draws_its_shares_and_repeats_for_a_seed():
    """Tolerance: over N = 20,000 draws (within one block of 65,536, a seeded shuffle of exactly 75 % / 25 %)
    the shares are hypergeometric with σ ≈ 0.0026; we allow 0.01 (about 4σ). Over whole blocks they are exact."""
    windows = [1000, 300]  # the small source is drawn 0.25 × N / 300 ≈ 17 times over: repeated
    sampler = MixtureSampler(windows, [0.75, 0.25], seed=7)
    sources, picked = sampler.take(20_000)
    share = float((sources == 0).mean())
    assert abs(share - 0.75) < 0.01, share
    assert (
        MixtureSampler(windows, [3, 1], seed=7).take(20_000)[0].tolist() == sources.tolist()
    )  # weights normalised
    again = MixtureSampler(windows, [0.75, 0.25], seed=7)
    assert [a.tolist() for a in again.take(20_000)] == [sources.tolist(), picked.tolist()]
    other = MixtureSampler(windows, [0.75, 0.25], seed=8).take(20_000)
    assert other[0].tolist() != sources.tolist()

    # Whole blocks: exact shares. Each source goes through all its windows once per epoch, then again.
    full = MixtureSampler(windows, [0.75, 0.25], seed=7, block=4096)
    sources, picked = full.take(4096 * 3)
    assert (sources == 0).sum() == 3 * 3072
    small = picked[sources == 1]
    for epoch in range(len(small) // 300):
        assert sorted(small[epoch * 300 : (epoch + 1) * 300].tolist()) == list(range(300))
    assert full.epochs() == pytest.approx([9216 / 1000, 3072 / 300])
    assert full.drawn().tolist() == [9216, 3072]

    # Resume from the counter alone, in the middle of a block and of an epoch.
    resumed = MixtureSampler(windows, [0.75, 0.25], seed=7, block=4096, position=5000)
    tail = resumed.take(4096 * 3 - 5000)
    assert tail[0].tolist() == sources[5000:].tolist() and tail[1].tolist() == picked[5000:].tolist()


def test_block_counts_and_bad_weights():
    assert block_counts([1, 1, 1], 10) == [4, 3, 3] and sum(block_counts([0.4, 0.3, 0.3])) == 65536
    with pytest.raises(JalmError, match="never be drawn"):
        MixtureSampler([10, 10], [1, 1e-9])
    with pytest.raises(JalmError, match="--data 'a=x:0': the weight must be a positive number"):
        parse_sources(["a=x:0"])
    with pytest.raises(JalmError, match="source name 'x' given twice"):
        parse_sources(["x=a", "x=b:2"])
    assert [(s.name, str(s.path), s.weight) for s in parse_sources(["c4=/d/c4:0.4", "/d/crawl"])] == [
        ("c4", "/d/c4", 0.4),
        ("crawl", "/d/crawl", 1.0),
    ]


# --- training on a mixture ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_sources(small_corpus, tokenizer_dir, tmp_path_factory) -> list[str]:
    """Wikipedia and Aozora as two packed datasets with one tokenizer, weighted 0.75 / 0.25."""
    from jalm.data import pack

    root = tmp_path_factory.mktemp("sources")
    lines = small_corpus.read_text(encoding="utf-8").splitlines(keepends=True)
    specs = []
    for name, part, weight in (("wiki", lines[:60], 0.75), ("aozora", lines[60:], 0.25)):
        (root / f"{name}.jsonl").write_text("".join(part), encoding="utf-8")
        pack(
            [root / f"{name}.jsonl"], tokenizer_dir, root / name, val_fraction=0.2, seq_len=64, progress=False
        )
        specs.append(f"{name}={root / name}:{weight}")
    return specs


def _cli_train(specs: list[str], run_dir: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "jalm.cli", "train", "--preset", "test", "--data", *specs]
    command += ["--out", str(run_dir), "--max-steps", "30", "--save-every", "10", "--eval-every", "10"]
    command += ["--no-progress"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_mixture_training_resumes_after_kill_9_and_logs_each_source(
    two_sources, tmp_path, same_checkpoint, kill_9
):
    reference = _cli_train(two_sources, tmp_path / "reference")
    assert reference.wait(timeout=600) == 0, reference.stderr.read()

    victim = _cli_train(two_sources, tmp_path / "victim")
    kill_9(victim, (tmp_path / "victim" / "checkpoints" / "step_00000010").exists)
    assert ckpt.latest_checkpoint(tmp_path / "victim").name != "step_00000030"
    resumed = _cli_train(two_sources, tmp_path / "victim")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()

    records = {name: read_metrics(tmp_path / name / "metrics.jsonl") for name in ("reference", "victim")}
    for rec in records.values():
        for r in rec:
            r.pop("tokens_per_s", None), r.pop("elapsed_s", None)
    assert records["victim"] == records["reference"]  # losses, per-source tokens and validation, step by step
    same_checkpoint(tmp_path / "reference", tmp_path / "victim")

    steps = [r for r in records["reference"] if "loss" in r and "event" not in r]
    last = steps[-1]
    drawn = last["tokens/wiki"] + last["tokens/aozora"]
    assert drawn == last["tokens"] == 30 * 4 * 64
    assert abs(last["tokens/wiki"] / drawn - 0.75) < 0.1  # 480 draws: within 0.1 (σ ≈ 0.02)
    sizes = {
        n: read_meta(Path(s.split("=")[1].rsplit(":", 1)[0]))["train_tokens"]
        for n, s in zip(("wiki", "aozora"), two_sources)
    }
    assert last["epochs/aozora"] == pytest.approx(
        last["tokens/aozora"] / 64 / ((sizes["aozora"] - 1) // 64), abs=1e-5
    )
    evals = [r for r in records["reference"] if "val_loss" in r]
    assert [r["step"] for r in evals] == [10, 20, 30]
    for r in evals:
        assert r["val_loss/wiki"] > 0 and r["val_loss/aozora"] > 0
        assert (
            min(r["val_loss/wiki"], r["val_loss/aozora"])
            <= r["val_loss"]
            <= max(r["val_loss/wiki"], r["val_loss/aozora"])
        )
    run = json.loads((tmp_path / "reference" / "run.json").read_text())
    assert [s["name"] for s in run["sources"]] == ["wiki", "aozora"] and run["data"].endswith("wiki")
    aozora = run["sources"][1]  # 25 % of the draws from a source with ~15 % of the tokens: repeated
    assert aozora["share_of_draws"] == 0.25 > aozora["share_of_tokens"]
    assert aozora["planned_epochs"] == pytest.approx(30 * 4 * 0.25 / aozora["windows"], abs=1e-4)


def test_resuming_with_other_data_is_refused(two_sources, tmp_path):
    from jalm.train import train
    from jalm.train.config import default_config

    cfg = default_config("test", max_steps=2, save_every=2)
    train(cfg, two_sources, tmp_path / "run", device="cpu", progress=False)
    swapped = [two_sources[0].replace(":0.75", ":0.5"), two_sources[1].replace(":0.25", ":0.5")]
    with pytest.raises(JalmError, match="checkpoint of a run on other data"):
        train(default_config("test", max_steps=4), swapped, tmp_path / "run", device="cpu", progress=False)


def test_plan_shows_epochs_per_source(two_sources):
    from jalm.train.config import default_config
    from jalm.train.plan import plan_for_run

    plan = plan_for_run(default_config("test", max_steps=400), parse_sources(two_sources), device="cpu")
    text = plan.describe()
    assert "a mixture of 2 sources" in text and "75.00% of the windows" in text
    epochs = plan.source_epochs()
    assert epochs[0] < 1 < epochs[1] and text.count("(repeated)") == 1
