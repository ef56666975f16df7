"""`jalm experiment`: all four experiments end to end at the quick size, and reports that say what the runs measured.

One session fixture runs `all` once (real cleaning, tokenizer, packing, 2-layer trainings, export, `jalm eval`
perplexity and sampling); the tests read the runs' own files back and check the reports against them.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from jalm.errors import JalmError
from jalm.experiment import analysis as an
from jalm.experiment import run_all, run_experiment
from jalm.experiment.noise import KIND_WEIGHTS, make_noise

STATUSES = {"held", "held on average only", "did not hold", "not observed", "no difference"}


@pytest.fixture(scope="session")
def exp_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("experiments")
    run_all(out, "quick", threads=1, progress=False)
    return out


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def train_losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in metrics(run_dir) if "loss" in r and "event" not in r]


def last_val(run_dir: Path) -> float:
    return [r["val_loss"] for r in metrics(run_dir) if "val_loss" in r][-1]


def tail_mean(values: list[float]) -> float:
    k = max(1, round(len(values) * 0.1))
    return sum(values[-k:]) / k


def table_row(report: str, *cells: str) -> str:
    """The one table row of report.md that starts with these cells."""
    prefix = "| " + " | ".join(cells) + " |"
    rows = [line for line in report.splitlines() if line.startswith(prefix)]
    assert len(rows) == 1, (prefix, rows)
    return rows[0]


def check_pngs(out: Path, report: str, names: list[str]) -> None:
    for name in names:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
        assert f"]({name})" in report


def results(out: Path) -> dict:
    data = json.loads((out / "results.json").read_text())
    assert {f["status"] for f in data["findings"]} <= STATUSES
    return data


def test_schedule_report_matches_the_runs_metrics(exp_dir):
    out = exp_dir / "schedule"
    report = (out / "report.md").read_text()
    val = {}
    for variant in ("cosine", "inverse_sqrt"):
        for seed in (0, 1):
            run = out / "runs" / f"{variant}-seed{seed}"
            config = json.loads((run / "run.json").read_text())["config"]
            assert config["schedule"] == variant and config["seed"] == seed and config["max_steps"] == 12
            losses = train_losses(run)
            assert len(losses) == 12
            val[variant, seed] = last_val(run)
            table_row(report, variant, str(seed), f"{tail_mean(losses):.3f}", f"{val[variant, seed]:.3f}")
    data = results(out)
    claim = data["findings"][0]
    wins = sum(val["cosine", s] < val["inverse_sqrt", s] for s in (0, 1))
    assert f"cosine lower in {wins} of 2 seeds" in claim["measured"]
    expected = (
        "held"
        if wins == 2
        else (
            "held on average only"
            if sum(val["cosine", s] - val["inverse_sqrt", s] for s in (0, 1)) < 0
            else "did not hold"
        )
    )
    assert claim["status"] == expected
    mean = statistics.fmean([val["cosine", 0], val["cosine", 1]])
    assert f"cosine {mean:.3f} ± " in claim["measured"]
    # Time at high LR, read from the logged learning rates.
    lrs = {
        v: [r["lr"] for r in metrics(out / "runs" / f"{v}-seed0") if "lr" in r]
        for v in ("cosine", "inverse_sqrt")
    }
    high = {v: sum(lr >= 0.5 * max(x) for lr in x) for v, x in lrs.items()}
    assert (
        f"cosine {high['cosine']}, inverse sqrt {high['inverse_sqrt']} of 12"
        in data["findings"][1]["measured"]
    )
    check_pngs(out, report, ["curves.png", "final_loss.png"])
    assert "seeds: 0, 1" in report and "Command: `jalm experiment" in report


def test_beta2_counts_spikes_with_the_guard_off(exp_dir):
    from jalm.train.config import default_config

    out = exp_dir / "beta2"
    report = (out / "report.md").read_text()
    data = results(out)
    for variant, beta2 in (("beta2_0.95", 0.95), ("beta2_0.999", 0.999)):
        for seed in (0, 1):
            run = out / "runs" / f"{variant}-seed{seed}"
            config = json.loads((run / "run.json").read_text())["config"]
            assert config["beta2"] == beta2 and config["spike_action"] == "off"
            assert config["lr"] == pytest.approx(10 * default_config("test").lr)
            assert not [r for r in metrics(run) if "event" in r]  # the guard never acted
            losses = train_losses(run)
            spikes = an.spikes(losses)
            assert data["spike_counts"][variant][seed] == len(spikes)
            table_row(report, variant.replace("_", " "), str(seed), str(len(spikes)))
            assert f"{tail_mean(losses):.3f} | {last_val(run):.3f} |" in table_row(
                report, variant.replace("_", " "), str(seed)
            )
    check_pngs(out, report, ["curves.png", "spikes.png"])


def test_init_uses_each_scheme_and_reports_the_loss_after_the_same_tokens(exp_dir):
    out = exp_dir / "init"
    report = (out / "report.md").read_text()
    for variant in ("small_init", "normal_0.02"):
        for seed in (0, 1):
            run = out / "runs" / f"{variant}-seed{seed}"
            assert json.loads((run / "run.json").read_text())["config"]["init"] == variant
            tokens = [r["tokens"] for r in metrics(run) if "tokens" in r]
            assert tokens[-1] == 12 * 32 * 4
            assert f"| {last_val(run):.3f} |" in table_row(report, variant, str(seed))
            assert table_row(report, variant, str(seed)).count("|") == 7
    # Different inits from the same seed give different starting losses; the same init, the same data order.
    first = {v: train_losses(out / "runs" / f"{v}-seed0")[0] for v in ("small_init", "normal_0.02")}
    assert first["small_init"] != first["normal_0.02"]
    assert "0.0791" in report  # √(2 / (5 · 64)), the small_init std of the test preset
    check_pngs(out, report, ["curves.png", "final_loss.png"])


def test_filtering_measures_perplexity_and_repetition_of_both_corpora(exp_dir):
    from jalm.jsonl import read_records
    from jalm.tokenizer import load_sentencepiece

    out = exp_dir / "filtering"
    report = (out / "report.md").read_text()
    data = results(out)
    packed = data["packed"]
    assert packed["filtered"]["train_tokens"] < packed["noisy"]["train_tokens"]
    for variant in ("noisy", "filtered"):
        run = out / "runs" / f"{variant}-seed0"
        assert json.loads((run / "run.json").read_text())["data"] == packed[variant]["dir"]
        evaluation = json.loads((run / "eval.json").read_text())
        row = table_row(report, variant, "0")
        assert f"| {evaluation['ppl']:.2f} | {evaluation['bits_per_char']:.3f} |" in row
        assert f"{tail_mean(train_losses(run)):.3f}" in row
        # The repetition rate is the mean over the saved samples, recomputed here from their text.
        sp = load_sentencepiece(Path(packed[variant]["dir"]) / "tokenizer")
        samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
        assert len(samples) == 2 * 2
        rates = [an.repetition_rate(sp.encode(s["continuation"])) for s in samples]
        rates = [r for r in rates if r is not None]
        assert evaluation["repetition_rate"] == pytest.approx(sum(rates) / len(rates))
        assert (run / "model" / "config.json").exists()
    # The composition table counts the noisy corpus as written to the cache.
    noisy_file = Path(packed["noisy"]["dir"]).parent / "noisy.jsonl.zst"
    labels = [r["experiment_label"] for r in read_records([noisy_file])]
    for label, row in data["composition"].items():
        assert row["docs"] == labels.count(label)
        assert f"| {label} | {row['docs']} |" in report
    assert {f"synthetic:{kind}" for kind in KIND_WEIGHTS} <= set(labels) and "corpus" in labels
    check_pngs(out, report, ["filtering.png", "curves.png"])


def test_index_report_lists_every_claim(exp_dir):
    index = (exp_dir / "report.md").read_text()
    for name in ("schedule", "beta2", "init", "filtering"):
        for finding in results(exp_dir / name)["findings"]:
            assert f"{finding['claim']}: **{finding['status']}**" in index
        assert f"]({name}/report.md)" in index


def test_rerun_reuses_finished_runs_and_a_new_directory_reproduces_them(exp_dir, tmp_path):
    schedule = exp_dir / "schedule"
    result = schedule / "runs" / "cosine-seed0" / "result.json"
    before = result.stat().st_mtime_ns
    run_experiment("schedule", schedule, "quick", cache=exp_dir / "cache", threads=1, progress=False)
    assert result.stat().st_mtime_ns == before
    # Same seed and settings in a fresh directory (data from the shared cache): the same curve, bit for bit.
    run_experiment(
        "schedule",
        tmp_path / "again",
        "quick",
        cache=exp_dir / "cache",
        threads=1,
        progress=False,
        seeds=(0,),
    )
    assert train_losses(tmp_path / "again" / "runs" / "cosine-seed0") == train_losses(
        schedule / "runs" / "cosine-seed0"
    )
    assert not (tmp_path / "again" / "cache").exists()


def test_spike_rule_divergence_and_repetition_on_known_sequences():
    flat = [5.0] * 30
    assert an.spikes(flat) == []
    spiky = flat[:15] + [7.0, 7.5] + flat[:10] + [6.1] + flat[:5]
    assert an.spikes(spiky) == [16, 28]  # steps are 1-based; two consecutive spiking steps are one spike
    assert an.spikes(flat[:5] + [50.0]) == []  # too little history to judge
    assert an.spikes(flat + [math.nan]) == [31]
    assert an.diverged(flat + [math.nan]) and not an.diverged([9.0] + flat) and an.diverged([4.0] + flat)
    assert an.repetition_rate([1, 2, 3, 4, 1, 2, 3, 4]) == pytest.approx(1 - 4 / 5)
    assert an.repetition_rate([1, 2, 3, 4, 5, 6]) == 0.0 and an.repetition_rate([1, 2]) is None
    assert an.compare([1.0, 2.0], [1.5, 2.5])["status"] == "held"
    assert an.compare([1.0, 3.0], [1.5, 2.6])["status"] == "held on average only"
    assert an.compare([2.0, 3.0], [1.5, 2.6])["status"] == "did not hold"
    assert an.compare([2.0], [2.0])["status"] == "no difference"
    assert an.compare([2.0, 9.0], [1.0, math.nan])["status"] == "held on average only"  # a diverged run loses


def test_a_diverged_run_is_read_back_as_diverged(tmp_path):
    # What the training loop writes when a run blows up with the guard off: NaN losses, a null validation loss.
    lines = [json.dumps({"step": i, "loss": 5.0, "lr": 1e-3, "tokens": 10 * i}) for i in range(1, 20)]
    lines += ['{"step": 20, "loss": NaN, "lr": 0.001, "tokens": 200}', '{"step": 20, "val_loss": null}']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    curve = an.read_curve(tmp_path)
    assert math.isnan(curve.val_loss) and curve.tokens == 200 and len(curve.losses) == 20
    assert an.diverged(curve.losses) and an.spikes(curve.losses, curve.steps) == [20]


def test_noise_is_deterministic_labelled_and_sized():
    texts = ["これは日本語の文章です。" * 40, "東京は日本の首都である。" * 30]
    a, b = make_noise(texts, 30_000, seed=3), make_noise(texts, 30_000, seed=3)
    assert a == b and a != make_noise(texts, 30_000, seed=4)
    assert {r["source"] for r in a} == {f"synthetic:{kind}" for kind in KIND_WEIGHTS}
    assert sum(len(r["text"]) for r in a) >= 30_000 * 0.99
    duplicates = [r["text"] for r in a if r["source"] == "synthetic:duplicate"]
    assert len(set(duplicates)) < len(duplicates)


def test_cli_help_and_errors(capsys, tmp_path):
    from jalm.cli import main

    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    assert "jalm experiment schedule --out" in capsys.readouterr().out
    with pytest.raises(JalmError, match="unknown preset"):
        run_experiment("init", tmp_path, "quick", preset="nope", progress=False)
    assert main(["experiment", "init", "--out", str(tmp_path), "--quick", "--steps", "0"]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "init", "--out", str(tmp_path), "--seeds", "a,b"])
