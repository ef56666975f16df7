"""`jalm tokenizer extend`: append pieces learned on new text to a base tokenizer, keeping every existing id.

Swallow's recipe for Llama 2 (32,000 → 43,176 pieces): learn a tokenizer of the same kind on Japanese text,
append the pieces the base lacks, and start the new embedding rows from the mean of the base rows each new
piece's text splits into (jalm.model.weights does that from `jalm_extend.json`).

SentencePiece bases (``spiece.model`` / ``tokenizer.model``: jalm's, LINE's, Llama 2's, Mistral's, Gemma's):

- unigram: a unigram model is trained on the text with the base's normalisation settings; its pieces the
  base lacks are appended in order of score, each keeping its score (both are log-probabilities of a
  unigram model; rounded to jalm's 1/16 grid so that an exact tokenizer.json can still be written);
- BPE: a BPE model is trained alike; its pieces are appended in merge order, each scored below every base
  piece (a later merge), and only if two pieces already in the vocabulary join into it (else SentencePiece's
  BPE could never produce it); the ones skipped are counted.

Byte-level BPE bases (only ``tokenizer.json``: Llama 3, Qwen) are refused: adding tokens there means adding
merges whose rank decides how *existing* text splits, which this command does not attempt.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from jalm.errors import JalmError
from jalm.io import write_atomic
from jalm.jsonl import expand_inputs, read_texts
from jalm.tokenizer.hf_files import exactness_problems, write_hf_tokenizer_files
from jalm.tokenizer.spec import SCORE_GRID
from jalm.tokenizer.train import _run_trainer, sample_sentences, tokenizer_model_file

EXTEND_FILE = "jalm_extend.json"
# Files of a base's tokenizer carried into the extended one unchanged (tokenizer.json is rewritten or dropped).
CARRIED = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja")


def _base_proto(base_dir: Path):
    from sentencepiece import sentencepiece_model_pb2 as pb

    path = tokenizer_model_file(base_dir)
    if path.name == "tokenizer.json":
        raise JalmError(
            f"{base_dir}: a byte-level BPE tokenizer (tokenizer.json only, as Llama 3's and Qwen's); extend "
            "does not add to it: new merges get ranks that change how existing text splits"
        )
    if not path.is_file():
        raise JalmError(f"{base_dir}: no tokenizer (spiece.model, tokenizer.model or tokenizer.json)")
    proto = pb.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception:  # noqa: BLE001 - protobuf's DecodeError
        raise JalmError(f"{path}: not a SentencePiece model") from None
    kinds = pb.TrainerSpec
    if proto.trainer_spec.model_type not in (kinds.UNIGRAM, kinds.BPE):
        raise JalmError(
            f"{path}: a {kinds.ModelType.Name(proto.trainer_spec.model_type)} SentencePiece model; extend takes unigram or BPE"
        )
    return path, proto


def _learn(proto, sentences: list[str], size: int, seed: int, threads: int, files: list[Path]) -> Any:
    """A model of the base's kind and normalisation trained on `sentences` (its pieces are the candidates)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    norm = proto.normalizer_spec
    options = {
        "model_type": pb.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type).lower(),
        "vocab_size": size,
        "hard_vocab_limit": False,  # little text: fewer candidates, counted, not an error
        "byte_fallback": True,
        "normalization_rule_name": norm.name or "identity",
        "add_dummy_prefix": norm.add_dummy_prefix,
        "remove_extra_whitespaces": norm.remove_extra_whitespaces,
        "split_digits": proto.trainer_spec.split_digits,
        "character_coverage": 0.9995,
        "max_sentence_length": 1 << 16,
        "input_sentence_size": 0,
        "num_threads": threads,
        "seed_sentencepiece_size": min(1_000_000, 5 * size),
        "minloglevel": 2,
    }
    if norm.name not in ("identity", "", "nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf"):
        raise JalmError(f"normalisation {norm.name!r} of the base cannot be reproduced for training")
    learned = pb.ModelProto()
    learned.ParseFromString(_run_trainer(sentences, options, False, files))
    return learned


def _splits(piece: str, base_sp, add_dummy_prefix: bool) -> list[int]:
    """The base ids a new piece's text encodes to (the rows its embedding is the mean of)."""
    text = piece.replace("▁", " ")
    if add_dummy_prefix and text.startswith(" "):
        text = text[1:]  # the base adds the "▁" itself
    ids = base_sp.encode(text)
    if add_dummy_prefix and not piece.startswith("▁") and ids and base_sp.id_to_piece(ids[0]) == "▁":
        ids = ids[1:]  # a lone dummy "▁" the piece does not contain
    return ids


def extend_tokenizer(
    base_dir: str | Path,
    inputs: list[str | Path],
    add: int,
    out_dir: str | Path,
    max_sentences: int = 200_000,
    seed: int = 0,
    threads: int = 1,
) -> dict:
    """Write the extended tokenizer into `out_dir`; returns (and writes as jalm_extend.json) what was added."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    base_dir, out = Path(base_dir), Path(out_dir)
    if add < 1:
        raise JalmError(f"--add must be at least 1, got {add}")
    base_file, proto = _base_proto(base_dir)
    base_bytes = base_file.read_bytes()
    base_sp = spm.SentencePieceProcessor(model_proto=base_bytes)
    files = expand_inputs(inputs)
    sentences, counts = sample_sentences(read_texts(files), max_sentences, seed)
    # As many pieces as the base and twice the new ones, and room for every character and byte piece.
    characters = len(set("".join(sentences)))
    size = max(len(proto.pieces), characters + 256 + 16) + 2 * add
    learned = _learn(proto, sentences, size, seed, threads, files)
    normal = pb.ModelProto.SentencePiece.NORMAL
    known = {p.piece for p in proto.pieces}
    bpe = proto.trainer_spec.model_type == pb.TrainerSpec.BPE
    candidates = [p for p in learned.pieces if p.type == normal and p.piece not in known]
    if not bpe:
        candidates.sort(key=lambda p: -p.score)
    floor = min((p.score for p in proto.pieces if p.type == normal), default=0.0)
    added, unreachable = [], 0
    for candidate in candidates:
        if len(added) == add:
            break
        if bpe and not any(
            candidate.piece[:i] in known and candidate.piece[i:] in known
            for i in range(1, len(candidate.piece))
        ):
            unreachable += 1
            continue
        piece = proto.pieces.add()
        piece.piece, piece.type = candidate.piece, normal
        # unigram: its own log-probability on the grid; BPE: merged after every base merge
        piece.score = floor - 1.0 - len(added) if bpe else round(candidate.score * SCORE_GRID) / SCORE_GRID
        known.add(candidate.piece)
        added.append(candidate.piece)
    if not added:
        raise JalmError(
            f"{', '.join(map(str, files[:2]))}: no piece learned there is missing from {base_file}"
        )
    proto.trainer_spec.vocab_size = len(proto.pieces)

    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / base_file.name, proto.SerializeToString())
    for name in CARRIED:
        if (base_dir / name).is_file():
            shutil.copy2(base_dir / name, out / name)
    tokenizer_json = "kept none"
    if (base_dir / "tokenizer.json").is_file() or not exactness_problems(proto):
        problems = exactness_problems(proto)
        if problems:
            tokenizer_json = f"not written ({'; '.join(problems)}): the slow tokenizer reads {base_file.name}"
        else:
            config = (
                json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
                if (out / "tokenizer_config.json").is_file()
                else {}
            )
            write_hf_tokenizer_files(
                out / base_file.name, out, model_max_length=config.get("model_max_length", 2048)
            )
            tokenizer_json = "written (exact, checked against SentencePiece)"
    first = len(proto.pieces) - len(added)
    record = {
        "base": str(base_dir),
        "base_file": base_file.name,
        "base_sha256": hashlib.sha256(base_bytes).hexdigest(),
        "base_vocab": first,
        "kind": "bpe" if bpe else "unigram",
        "added": len(added),
        "unreachable_bpe_pieces_skipped": unreachable,
        "candidates": len(candidates),
        "tokenizer_json": tokenizer_json,
        "sentences": counts,
        # new id → the base ids its text encodes to (its embedding row starts as their mean)
        "splits": {
            str(first + i): _splits(piece, base_sp, proto.normalizer_spec.add_dummy_prefix)
            for i, piece in enumerate(added)
        },
        "pieces": added,
    }
    write_atomic(out / EXTEND_FILE, json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    return record
