"""What is known about a model directory: the facts its card shows, each read from the file that holds it.

Sources (all optional except config.json): config.json, jalm.json (provenance from `jalm export`),
training/metrics.jsonl and training/loss.png, training/clean_stats.json (the clean stage's stats),
the packed data's meta.json (when the path in jalm.json still exists), the tokenizer files, and a
results.json from `jalm eval`. A missing file makes its facts unknown; a file that exists but cannot be
read is listed in `problems` (and its facts are unknown too), so nothing fails or vanishes silently.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jalm.errors import JalmError


@dataclass
class ModelFacts:
    path: Path
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    params_source: str = ""
    provenance: dict[str, Any] | None = None
    train_curve: list[tuple[int, float]] = field(default_factory=list)
    val_curve: list[tuple[int, float]] = field(default_factory=list)
    last_metrics: dict[str, Any] | None = None
    metrics_path: Path | None = None
    loss_png: Path | None = None
    clean_stats: dict[str, Any] | None = None
    packed: dict[str, Any] | None = None
    tokenizer: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] | None = None
    results_path: Path | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def context(self) -> int | None:
        """Positions config.json declares (None when it declares none: the card says unknown)."""
        from jalm.generate import context_length

        return context_length(self.config, default=None)


def _read_json(path: Path, problems: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problems.append(
            f"{path}: cannot be read ({str(error).splitlines()[0][:120]}); its facts are shown as unknown"
        )
        return None


def _read_metrics(path: Path, problems: list[str]) -> tuple[list, list, dict | None]:
    train, val, last, bad = [], [], None, 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        problems.append(f"{path}: cannot be read ({error})")
        return train, val, last
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if not isinstance(record, dict) or not isinstance(record.get("step"), (int, float)):
            bad += 1
            continue
        if isinstance(record.get("loss"), (int, float)) and "event" not in record:
            train.append((int(record["step"]), float(record["loss"])))
            last = record
        if isinstance(record.get("val_loss"), (int, float)):
            val.append((int(record["step"]), float(record["val_loss"])))
    if bad:
        problems.append(f"{path}: {bad} line(s) not metrics records, left out of the curve")
    return train, val, last


def count_params_from_config(model_dir: Path) -> int | None:
    """Exact parameter count (tied weights once) by building the model on the meta device: no memory used."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(model_dir)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # an architecture transformers does not know: fall back to the weight files
        return None


def count_params_from_safetensors(model_dir: Path) -> int | None:
    """Sum of tensor sizes in the safetensors headers (tied weights are stored once by save_pretrained)."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                n = 1
                for dim in info["shape"]:
                    n *= dim
                total += n
    return total


def _tokenizer_facts(model_dir: Path, problems: list[str]) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "files": sorted(
            name
            for name in ("spiece.model", "tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt")
            if (model_dir / name).exists()
        )
    }
    config = _read_json(model_dir / "tokenizer_config.json", problems) or {}
    facts["class"] = config.get("tokenizer_class")
    facts["model_max_length"] = config.get("model_max_length")
    tok_json = (
        _read_json(model_dir / "tokenizer.json", problems)
        if (model_dir / "tokenizer.json").exists()
        else None
    )
    if isinstance(tok_json, dict) and isinstance(tok_json.get("model"), dict):
        model = tok_json["model"]
        facts["algorithm"] = model.get("type")
        facts["byte_fallback"] = model.get("byte_fallback")
        vocab = model.get("vocab")
        facts["vocab_size"] = len(vocab) if isinstance(vocab, (list, dict)) else None
        facts["special"] = [
            (t.get("id"), t.get("content")) for t in tok_json.get("added_tokens", []) if t.get("special")
        ]
    if (model_dir / "spiece.model").exists():
        try:
            from sentencepiece import sentencepiece_model_pb2

            proto = sentencepiece_model_pb2.ModelProto()
            proto.ParseFromString((model_dir / "spiece.model").read_bytes())
            kinds = {1: "Unigram", 2: "BPE", 3: "Word", 4: "Char"}
            facts["algorithm"] = facts.get("algorithm") or kinds.get(proto.trainer_spec.model_type, "?")
            facts["byte_fallback"] = bool(proto.trainer_spec.byte_fallback)
            facts["vocab_size"] = facts.get("vocab_size") or len(proto.pieces)
            facts["sentencepiece"] = True
            if not facts.get("special"):
                facts["special"] = [(i, p.piece) for i, p in enumerate(proto.pieces) if p.type in (2, 3, 4)][
                    :10
                ]
        except Exception as error:  # a corrupt or foreign file: say so, keep going
            problems.append(f"{model_dir / 'spiece.model'}: cannot be read as SentencePiece ({error})")
    return facts


def find_results(model_dir: Path, results: str | Path | None = None) -> Path | None:
    """--results FILE, else MODEL_DIR/results.json, else the run directory's results.json beside it."""
    if results is not None:
        path = Path(results)
        if not path.is_file():
            raise JalmError(f"{path}: no such results file")
        return path
    for path in (model_dir / "results.json", model_dir.parent / "results.json"):
        if path.is_file():
            return path
    return None


def collect(model_dir: str | Path, results: str | Path | None = None, name: str | None = None) -> ModelFacts:
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise JalmError(f"{path}: not a Hugging Face model directory (no config.json)")
    facts = ModelFacts(path=path, name=name or path.resolve().name)
    problems = facts.problems
    config = _read_json(path / "config.json", problems)
    if not isinstance(config, dict):
        raise JalmError(f"{path / 'config.json'}: not a JSON object")
    facts.config = config
    provenance = _read_json(path / "jalm.json", problems)
    facts.provenance = provenance if isinstance(provenance, dict) else None
    if facts.provenance and isinstance(facts.provenance.get("params"), int):
        facts.params, facts.params_source = facts.provenance["params"], "from jalm.json"
    else:
        facts.params = count_params_from_config(path)
        facts.params_source = "counted from config.json"
        if facts.params is None:
            facts.params = count_params_from_safetensors(path)
            facts.params_source = "counted from the safetensors headers"
    training = path / "training"
    if (training / "metrics.jsonl").is_file():
        facts.metrics_path = training / "metrics.jsonl"
        facts.train_curve, facts.val_curve, facts.last_metrics = _read_metrics(facts.metrics_path, problems)
    if (training / "loss.png").is_file():
        facts.loss_png = training / "loss.png"
    stats = _read_json(training / "clean_stats.json", problems)
    facts.clean_stats = stats if isinstance(stats, dict) else None
    if facts.provenance and isinstance(facts.provenance.get("data"), str):
        meta = _read_json(Path(facts.provenance["data"]) / "meta.json", problems)
        facts.packed = meta if isinstance(meta, dict) else None
    facts.tokenizer = _tokenizer_facts(path, problems)
    facts.results_path = find_results(path, results)
    if facts.results_path is not None:
        loaded = _read_json(facts.results_path, problems)
        if isinstance(loaded, dict) and isinstance(loaded.get("tasks"), dict):
            facts.results = loaded
        elif loaded is not None:
            problems.append(
                f"{facts.results_path}: not a jalm results file (no 'tasks' object); evaluation unknown"
            )
    return facts
