"""Train a SentencePiece unigram model the way LINE's tokenizer was made (see the package docstring)."""

from __future__ import annotations

import io
import json
import os
import random
import re
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jalm.errors import JalmError
from jalm.io import refuse_incomplete, write_atomic
from jalm.jsonl import expand_inputs, read_texts
from jalm.memory import machine_memory
from jalm.tokenizer.hf_files import write_hf_tokenizer_files
from jalm.tokenizer.sentences import MAX_SENTENCE_CHARS, _chunks, _raw_sentences
from jalm.tokenizer.spec import NEWLINE, REQUIRED_CHARS, SCORE_GRID, SPECIAL_TOKENS, SPIECE_MODEL

if TYPE_CHECKING:
    import sentencepiece

STATS_FILE = "train_stats.json"
CHARS_PER_TOKEN_SAMPLE = 2000
# SentencePiece unigram training holds its sample several times over (suffix array, seed pieces, EM
# lattices): peak RSS above the held sample, per sampled character (benchmarks/tokenizer_memory.py).
TRAINER_BYTES_PER_CHAR = 56


def sample_sentences(
    texts: Iterable[str], max_sentences: int, seed: int = 0, progress: bool = False
) -> tuple[list[str], dict[str, int]]:
    """Reservoir-sample up to `max_sentences` sentences from documents in one pass, deterministic per seed.

    Returns the sample and counts (documents, sentences seen, sentences used, sentences over
    MAX_SENTENCE_CHARS that were cut into several).
    """
    from jalm.progress import progress_bar

    if max_sentences < 1:
        raise JalmError(f"--max-sentences must be at least 1, got {max_sentences}")
    rng = random.Random(seed)
    sample: list[str] = []
    documents = seen = cut = 0
    bar = progress_bar(desc="reading", unit=" docs", disable=not progress, file=sys.stderr, mininterval=1.0)
    for text in texts:
        documents += 1
        for long_sentence in _raw_sentences(text):
            cut += len(long_sentence) > MAX_SENTENCE_CHARS
            for sentence in _chunks(long_sentence, MAX_SENTENCE_CHARS):
                if seen < max_sentences:
                    sample.append(sentence)
                else:
                    slot = rng.randrange(seen + 1)
                    if slot < max_sentences:
                        sample[slot] = sentence
                seen += 1
        bar.update()
        if documents % 64 == 0:
            bar.set_postfix(sentences=seen, refresh=False)
    bar.set_postfix(sentences=seen, refresh=False)
    bar.close()
    counts = {
        "documents": documents,
        "sentences_seen": seen,
        "sentences_used": len(sample),
        "long_sentences_cut": cut,
    }
    return sample, counts


def _sample_with_executor(files, max_sentences, seed, workers, executor, retries, progress):
    from jalm.executors import DEFAULT_RETRIES, Executor
    from jalm.progress import progress_bar
    from jalm.tokenizer.sample import sample_parallel

    if max_sentences < 1:
        raise JalmError(f"--max-sentences must be at least 1, got {max_sentences}")
    bar = progress_bar(desc="sampling", unit=" docs", disable=not progress, file=sys.stderr, mininterval=1.0)
    with Executor(workers, executor, DEFAULT_RETRIES if retries is None else retries) as runner:
        sample, counts = sample_parallel(files, max_sentences, seed, runner, bar)
    bar.close()
    return sample, counts


def _describe_inputs(inputs: list[Path]) -> str:
    names = ", ".join(str(p) for p in inputs[:2])
    return names + (f" (+{len(inputs) - 2} more)" if len(inputs) > 2 else "")


def _trainer_options(vocab_size: int, num_threads: int) -> dict[str, Any]:
    """SentencePiece trainer options; each one is part of the tokenizer's definition."""
    return {
        "model_type": "unigram",
        "vocab_size": vocab_size,
        "byte_fallback": True,  # no <unk> ever: unseen characters become UTF-8 byte pieces
        # Identity: no NFKC, no dummy prefix, no whitespace squeezing, so decode(encode(x)) == x and
        # "▁" only stands for a real space (Japanese has no spaces between words to mark).
        "normalization_rule_name": "identity",
        "add_dummy_prefix": False,
        "remove_extra_whitespaces": False,
        "character_coverage": 0.9995,  # Japanese needs thousands of kanji; the rarest 0.05% fall back to bytes
        # Digits are single pieces, so every number is spelled digit by digit: the model sees the same
        # units in 1928 and 928 (consistent arithmetic, answers that are numbers), instead of whatever
        # chunks frequent years happen to form. It costs a few per cent more tokens on number-heavy text.
        "split_digits": True,
        # Runs of spaces may be pieces of their own (indentation in code and markup), which only matters
        # for text with spaces; Japanese prose hardly has any.
        "allow_whitespace_only_pieces": True,
        "required_chars": REQUIRED_CHARS,
        # Speed: SentencePiece starts EM from up to 1M seed pieces and prunes by 25% per round with two EM
        # steps each. Measured here (vocab 8000, 94k sentences of data/corpus, chars/token on data/dev):
        # defaults 123 CPU-s → 1.501; 5×vocab seeds, halving, one EM step 20 CPU-s → 1.504 (other mixes
        # 1.498–1.502): no measurable loss for a sixth of the time, so the demo trains in seconds.
        "seed_sentencepiece_size": min(1_000_000, 5 * vocab_size),
        "shrinking_factor": 0.5,
        "num_sub_iterations": 1,
        "unk_id": 0,
        "bos_id": 1,
        "eos_id": 2,
        "pad_id": 3,
        "unk_piece": SPECIAL_TOKENS[0],
        "bos_piece": SPECIAL_TOKENS[1],
        "eos_piece": SPECIAL_TOKENS[2],
        "pad_piece": SPECIAL_TOKENS[3],
        # Control symbols (ids 4..6) are never produced from text; "\n" (id 7) is user-defined so it is
        # one piece, and turned into an ordinary piece afterwards (see _finalize_model).
        "control_symbols": list(SPECIAL_TOKENS[4:]),
        "user_defined_symbols": [NEWLINE],
        "max_sentence_length": 4 * MAX_SENTENCE_CHARS,  # bytes; our sentences are cut to fit
        "input_sentence_size": 0,  # we sample ourselves (deterministically, with the seed)
        "num_threads": num_threads,
        "minloglevel": 2,  # SentencePiece's INFO log is hundreds of lines; we print our own progress
    }


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _spm_error(error: Exception, inputs: list[Path], vocab_size: int) -> JalmError:
    """Turn a SentencePiece training error into one line naming the input and what to do."""
    message = " ".join(str(error).split())
    where = _describe_inputs(inputs)
    too_high = re.search(r"Vocabulary size too high \((\d+)\).*?<= (\d+)", message)
    if too_high:
        return JalmError(
            f"{where}: too little text for --vocab-size {vocab_size}; SentencePiece can learn at most "
            f"{too_high.group(2)} pieces from it: use a smaller --vocab-size or more text"
        )
    too_low = re.search(r"smaller than required_chars\. \d+ vs (\d+)", message)
    if too_low:
        return JalmError(
            f"{where}: --vocab-size {vocab_size} is too small: this text's characters and the special and byte "
            f"pieces alone need {too_low.group(1)}; use a larger --vocab-size"
        )
    return JalmError(f"{where}: SentencePiece training failed: {message}")


def _run_trainer(sentences: list[str], options: dict[str, Any], progress: bool, files: list[Path]) -> bytes:
    """Train SentencePiece in memory; return the serialized model. Shows elapsed time while it runs
    (SentencePiece has no progress callback, but it releases the GIL, so a ticker thread can)."""
    import sentencepiece as spm

    from jalm.progress import progress_bar

    buffer = io.BytesIO()
    bar = progress_bar(
        desc="training", bar_format="{desc}: {elapsed} elapsed", disable=not progress, file=sys.stderr
    )
    done = threading.Event()

    def tick() -> None:
        while not done.wait(1.0):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=buffer, **options)
    except RuntimeError as error:
        raise _spm_error(error, files, options["vocab_size"]) from None
    finally:
        done.set()
        ticker.join()
        bar.close()
    return buffer.getvalue()


def _finalize_model(proto: bytes) -> bytes:
    """Make the trained model one that `tokenizers` reproduces bit for bit.

    SentencePiece's Viterbi adds float32 scores, tokenizers' adds float64 ones: where two segmentations
    have the same pieces in another order (runs of "　", "ー", spaces) the two round differently and
    pick different ones. Scores on a 1/16 grid make those sums exact in both. User-defined pieces get
    SentencePiece's bonus `length * max_score - 0.1`, which is off any grid, so "\n" (the only one, and
    the only piece that covers a newline, as training sentences never contain one) becomes an ordinary
    piece with the highest score instead; it still always encodes "\n" as the single piece 7.
    """
    from sentencepiece import sentencepiece_model_pb2 as pb

    model = pb.ModelProto()
    model.ParseFromString(proto)
    types = pb.ModelProto.SentencePiece
    top = max(p.score for p in model.pieces if p.type == types.NORMAL)
    for piece in model.pieces:
        if piece.type == types.USER_DEFINED:
            piece.type, piece.score = types.NORMAL, top
        if piece.type == types.NORMAL:
            piece.score = round(piece.score * SCORE_GRID) / SCORE_GRID
    return model.SerializeToString()


def train_tokenizer(
    inputs: list[Path],
    out_dir: Path,
    vocab_size: int = 51200,
    max_sentences: int = 2_000_000,
    seed: int = 0,
    num_threads: int | None = None,
    progress: bool = True,
    model_max_length: int = 2048,
    allow_incomplete: bool = False,
    workers: int | None = None,
    executor: str = "local",
    retries: int | None = None,
) -> Path:
    """Train the unigram tokenizer on JSONL(.gz/.zst) files or directories; return `out_dir`.

    Inputs that a `jalm clean` run still writes (or that a killed one left) are refused unless
    `allow_incomplete`.

    With `workers` > 1 or Ray, the sample is drawn by one shard job per file (jalm.tokenizer.sample):
    uniform over sentences as the default single-process reservoir is, but other sentences.

    `out_dir` receives ``spiece.model``, the Hugging Face tokenizer files and ``train_stats.json``
    (counts, options, chars/token, seconds).
    """
    started = time.perf_counter()
    refuse_incomplete(list(inputs), allow_incomplete)
    files = expand_inputs(inputs)
    if not files:
        raise JalmError("no input files given")
    if executor == "local" and (workers or 1) <= 1:
        sentences, counts = sample_sentences(read_texts(files), max_sentences, seed, progress)
    else:
        sentences, counts = _sample_with_executor(
            files, max_sentences, seed, workers, executor, retries, progress
        )
    if not sentences:
        raise JalmError(
            f"{_describe_inputs(files)}: no text to train a tokenizer on ({counts['documents']} documents, "
            "0 sentences)"
        )
    threads = num_threads or _default_threads()
    options = _trainer_options(vocab_size, threads)
    chars = sum(len(sentence) for sentence in sentences)
    needed = check_trainer_memory(chars, len(sentences))
    if progress:
        print(
            f"training a unigram tokenizer (vocab {vocab_size}) on {len(sentences):,} of "
            f"{counts['sentences_seen']:,} sentences ({chars:,} characters, about {needed / 2**30:.1f} GiB "
            f"for SentencePiece) with {threads} threads",
            file=sys.stderr,
            flush=True,
        )
    trained = time.perf_counter()
    proto = _finalize_model(_run_trainer(sentences, options, progress, files))
    train_seconds = time.perf_counter() - trained

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / SPIECE_MODEL
    write_atomic(model_path, proto)
    write_hf_tokenizer_files(model_path, out_dir, model_max_length)

    sp = load_sentencepiece(model_path)
    step = max(1, len(sentences) // CHARS_PER_TOKEN_SAMPLE)
    stats = {
        "inputs": [str(p) for p in files],
        "vocab_size": sp.get_piece_size(),
        **counts,
        "sample_chars": chars,
        "trainer_memory_estimate_bytes": needed,
        "seed": seed,
        "chars_per_token": round(chars_per_token(sp, sentences[::step]), 4),
        "chars_per_token_sample": len(sentences[::step]),
        "train_seconds": round(train_seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "trainer_options": {k: v for k, v in options.items() if k not in ("num_threads", "minloglevel")},
        "score_grid": f"1/{SCORE_GRID}",
    }
    write_atomic(out_dir / STATS_FILE, json.dumps(stats, ensure_ascii=False, indent=1) + "\n")
    return out_dir


def check_trainer_memory(chars: int, sentences: int) -> int:
    """SentencePiece's memory for a sample of `chars` characters; refuse, in one line, what cannot fit."""
    needed = chars * TRAINER_BYTES_PER_CHAR
    available = machine_memory()
    if needed > 0.8 * available:
        fitting = int(sentences * 0.8 * available / needed)
        raise JalmError(
            f"--max-sentences: {sentences:,} sentences ({chars:,} characters) need about {needed / 2**30:.1f} GiB "
            f"to train SentencePiece ({TRAINER_BYTES_PER_CHAR} B per character), more than 80 % of this "
            f"machine's {available / 2**30:.1f} GiB; use --max-sentences {fitting:,} or fewer"
        )
    return needed


# A SentencePiece model in a model directory: jalm's and LINE's name, and Llama / Mistral / Gemma's.
SENTENCEPIECE_FILES = (SPIECE_MODEL, "tokenizer.model")


def tokenizer_model_file(dir_or_file: str | Path) -> Path:
    """The SentencePiece model of a tokenizer or model directory (``spiece.model`` or ``tokenizer.model``)."""
    path = Path(dir_or_file)
    if not path.is_dir():
        return path
    for name in SENTENCEPIECE_FILES:
        if (path / name).is_file():
            return path / name
    if (path / "tokenizer.json").is_file():
        return path / "tokenizer.json"  # a byte-level BPE base (Llama 3, Qwen): jalm.tokenizer.encoder
    return path / SPIECE_MODEL


def load_sentencepiece(dir_or_file: str | Path) -> sentencepiece.SentencePieceProcessor:
    """Load ``spiece.model`` (or ``tokenizer.model``) from a tokenizer or model directory, or a model file."""
    import sentencepiece as spm

    path = tokenizer_model_file(dir_or_file)
    if path.name == "tokenizer.json":
        raise JalmError(
            f"{path.parent}: only tokenizer.json (no spiece.model or tokenizer.model); this step needs a "
            "SentencePiece model"
        )
    if not path.is_file():
        raise JalmError(f"{path}: no such SentencePiece model (train one with `jalm tokenizer train`)")
    sp = spm.SentencePieceProcessor()
    try:
        sp.load(str(path))
    except (OSError, RuntimeError) as error:
        raise JalmError(f"{path}: not a SentencePiece model ({' '.join(str(error).split())})") from None
    return sp


def chars_per_token(sp: sentencepiece.SentencePieceProcessor, texts: Iterable[str]) -> float:
    """Characters per token over `texts` (no BOS/EOS counted); 0.0 for no tokens."""
    texts = list(texts)
    tokens = sum(len(ids) for ids in sp.encode(texts)) if texts else 0
    return sum(len(t) for t in texts) / tokens if tokens else 0.0
