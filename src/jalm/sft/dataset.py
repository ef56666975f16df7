"""Conversations → token ids with a loss mask → micro-batches, packed or padded, in a resumable order.

Truncation rule: a conversation longer than the context (`seq_len + 1` tokens, as a pretraining window)
keeps its leading complete turns: it is cut after the last reply (and its `</s>`) that still fits. One
whose first reply does not fit is set aside and counted (`too_long`): a reply cut mid-way would teach the
model to stop without `</s>`, and a prompt cut from the left loses the question.

Batching (`--batching`):
- `packed`: conversations, in a shuffled order, are laid one after another into rows of `seq_len`
  positions. Positions restart at 0 for each conversation and no token attends to another conversation
  (transformers turns restarting `position_ids` into a block-diagonal causal mask), so a conversation's
  logits are the same alone and packed; rows are padded only at their end.
- `padded`: conversations are grouped by length (sorted within shuffled pools of 32 micro-batches) and
  padded to the longest of their micro-batch, so little is wasted; the micro-batches are then shuffled.
The order is a pure function of (seed, epoch): the position in the stream of micro-batches is all a
checkpoint needs to resume exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jalm.chat_template import LINE_CHAT_TEMPLATE, encode_conversation
from jalm.errors import JalmError

IGNORE = -100  # label of a token that is not learnt (PyTorch's and transformers' convention)
BATCHING = ("packed", "padded")
POOL = 32  # padded batching sorts by length within pools of this many micro-batches
ALIGN = 8  # pad lengths to a multiple of this: fewer distinct shapes for compiled graphs and kernels


@dataclass
class Encoder:
    """A tokenizer as SFT needs it: plain text → ids (no special tokens added), and the end-of-reply token."""

    encode: Callable[[str], list[int]]
    eos_token: str
    eos_id: int
    vocab_size: int
    kind: str  # "sentencepiece" or "transformers"

    @property
    def special_ids(self) -> dict[str, int]:
        return {self.eos_token: self.eos_id}


def load_encoder(tokenizer_dir: str | Path) -> Encoder:
    """SentencePiece when the directory has `spiece.model` (exact ids on every transformers version, see the
    tokenizer stage), otherwise the directory's Hugging Face tokenizer."""
    path = Path(tokenizer_dir)
    if (path / "spiece.model").exists():
        from jalm.tokenizer import load_sentencepiece

        sp = load_sentencepiece(path)
        if sp.eos_id() < 0:
            raise JalmError(f"{path / 'spiece.model'}: the tokenizer has no end-of-sequence piece")
        return Encoder(
            sp.encode, sp.id_to_piece(sp.eos_id()), sp.eos_id(), sp.get_piece_size(), "sentencepiece"
        )
    from jalm.hf import load_tokenizer

    tokenizer = load_tokenizer(path, use_fast=True)
    if tokenizer.eos_token_id is None:
        raise JalmError(f"{path}: the tokenizer has no end-of-sequence token to close replies with")

    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    return Encoder(encode, tokenizer.eos_token, tokenizer.eos_token_id, len(tokenizer), "transformers")


@dataclass
class Example:
    ids: np.ndarray  # int32 token ids of the whole (possibly truncated) conversation
    labels: np.ndarray  # int64 next-token targets for ids[:-1]: ids[1:] where learnt, IGNORE elsewhere
    source: str  # "file:line"

    @property
    def positions(self) -> int:
        return len(self.ids) - 1

    @property
    def trainable(self) -> int:
        return int((self.labels != IGNORE).sum())


@dataclass
class TokenizeStats:
    conversations: int = 0
    examples: int = 0
    truncated: int = 0  # trailing turns dropped to fit the context
    too_long: int = 0  # not even the first reply fits: set aside
    too_long_examples: list[str] = field(default_factory=list)
    nothing_to_learn: int = 0  # the template marked no reply token (a custom template's doing): set aside
    tokens: int = 0
    trainable_tokens: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _reply_ends(mask: Sequence[bool]) -> list[int]:
    """Token counts at which a reply (and its </s>) ends: the places a conversation may be cut."""
    return [i + 1 for i in range(len(mask)) if mask[i] and (i + 1 == len(mask) or not mask[i + 1])]


def tokenize(
    conversations: Iterable,
    encoder: Encoder,
    seq_len: int,
    template: str = LINE_CHAT_TEMPLATE,
    train_on_everything: bool = False,
) -> tuple[list[Example], TokenizeStats]:
    """Encode conversations (see template.encode_conversation), apply the truncation rule, build labels."""
    stats = TokenizeStats()
    examples = []
    limit = seq_len + 1
    for conversation in conversations:
        stats.conversations += 1
        ids, mask = encode_conversation(
            conversation.messages, encoder.encode, encoder.special_ids, template, encoder.eos_token
        )
        if len(ids) > limit:
            fitting = [end for end in _reply_ends(mask) if end <= limit]
            if not fitting:
                stats.too_long += 1
                if len(stats.too_long_examples) < 20:
                    first = _reply_ends(mask)[0]
                    stats.too_long_examples.append(
                        f"{conversation.source}: first reply ends at token {first}, the context holds {limit}"
                    )
                continue
            ids, mask = ids[: fitting[-1]], mask[: fitting[-1]]
            stats.truncated += 1
        else:
            # Turns after the last reply teach nothing (they are never a target); drop them.
            ends = _reply_ends(mask)
            if ends and ends[-1] < len(ids) and not train_on_everything:
                ids, mask = ids[: ends[-1]], mask[: ends[-1]]
        array = np.asarray(ids, dtype=np.int32)
        learnt = (
            np.ones(len(ids) - 1, dtype=bool) if train_on_everything else np.asarray(mask[1:], dtype=bool)
        )
        labels = np.where(learnt, array[1:], IGNORE).astype(np.int64)
        example = Example(array, labels, conversation.source)
        if example.trainable == 0:
            stats.nothing_to_learn += 1
            continue
        examples.append(example)
        stats.examples += 1
        stats.tokens += len(ids)
        stats.trainable_tokens += example.trainable
    return examples, stats


def is_validation(conversation, fraction: float) -> bool:
    """Deterministic split by content, independent of file order: `jalm pack`'s split of documents,
    applied to the conversation's roles and contents."""
    from jalm.data import is_validation as is_validation_text

    text = "\x1e".join(f"{m['role']}\x1f{m['content']}" for m in conversation.messages)
    return is_validation_text(text, fraction)


# --- order and batches -------------------------------------------------------------------------------


def plan_epoch(lengths: np.ndarray, seq_len: int, micro: int, batching: str, seed: int, epoch: int) -> list:
    """The micro-batches of one epoch: lists of rows (packed) or of example indices (padded)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if batching == "packed":
        rows, row, used = [], [], 0
        for index in order.tolist():
            need = int(lengths[index])
            if row and used + need > seq_len:
                rows.append(row)
                row, used = [], 0
            row.append(index)
            used += need
        if row:
            rows.append(row)
        return [rows[i : i + micro] for i in range(0, len(rows), micro)]
    batches = []
    pool = micro * POOL
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")].tolist()
        batches.extend(chunk[i : i + micro] for i in range(0, len(chunk), micro))
    return [batches[i] for i in rng.permutation(len(batches))]


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def collate_packed(examples: Sequence[Example], rows: list[list[int]], pad_id: int) -> dict[str, np.ndarray]:
    width = _aligned(max(sum(examples[i].positions for i in row) for row in rows))
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    labels = np.full((len(rows), width), IGNORE, dtype=np.int64)
    positions = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        at = 0
        for index in row:
            example = examples[index]
            n = example.positions
            input_ids[r, at : at + n] = example.ids[:-1]
            labels[r, at : at + n] = example.labels
            positions[r, at : at + n] = np.arange(n)
            at += n
        positions[r, at:] = np.arange(width - at)  # the padding is a sequence of its own
    return {"input_ids": input_ids, "labels": labels, "position_ids": positions}


def collate_padded(examples: Sequence[Example], indices: list[int], pad_id: int) -> dict[str, np.ndarray]:
    width = _aligned(max(examples[i].positions for i in indices))
    input_ids = np.full((len(indices), width), pad_id, dtype=np.int64)
    labels = np.full((len(indices), width), IGNORE, dtype=np.int64)
    attention = np.zeros((len(indices), width), dtype=np.int64)
    for r, index in enumerate(indices):
        example = examples[index]
        n = example.positions
        input_ids[r, :n] = example.ids[:-1]
        labels[r, :n] = example.labels
        attention[r, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def collate(examples: Sequence[Example], batch: list, batching: str, pad_id: int) -> dict[str, np.ndarray]:
    if batching == "packed":
        return collate_packed(examples, batch, pad_id)
    return collate_padded(examples, batch, pad_id)


def batch_tokens(examples: Sequence[Example], batch: list, batching: str) -> tuple[int, int]:
    """(input tokens, learnt tokens) of a micro-batch, without building it."""
    members = [i for row in batch for i in row] if batching == "packed" else batch
    return sum(examples[i].positions for i in members), sum(examples[i].trainable for i in members)


class EpochStream:
    """The endless stream of micro-batches, epoch after epoch; `locate(position)` → (epoch, index)."""

    def __init__(self, examples: Sequence[Example], seq_len: int, micro: int, batching: str, seed: int):
        if batching not in BATCHING:
            raise JalmError(f"unknown batching {batching!r}; choose {' or '.join(BATCHING)}")
        if not examples:
            raise JalmError("no training conversations left to train on")
        self.examples, self.seq_len, self.micro, self.batching, self.seed = (
            examples,
            seq_len,
            micro,
            batching,
            seed,
        )
        self.lengths = np.asarray([e.positions for e in examples], dtype=np.int64)
        self._plans: list[list] = []

    def plan(self, epoch: int) -> list:
        while len(self._plans) <= epoch:
            e = len(self._plans)
            self._plans.append(
                plan_epoch(self.lengths, self.seq_len, self.micro, self.batching, self.seed, e)
            )
        return self._plans[epoch]

    def locate(self, position: int) -> tuple[int, int]:
        epoch = 0
        while position >= len(self.plan(epoch)):
            position -= len(self.plan(epoch))
            epoch += 1
        return epoch, position

    def batch(self, position: int) -> list:
        epoch, index = self.locate(position)
        return self.plan(epoch)[index]

    def micro_batches_in(self, epochs: int) -> int:
        return sum(len(self.plan(e)) for e in range(epochs))

    def epoch_at(self, position: int) -> float:
        epoch, index = self.locate(position)
        return epoch + index / len(self.plan(epoch))
