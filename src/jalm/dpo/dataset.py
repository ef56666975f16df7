"""Preference pairs → token ids and reply masks → micro-batches of pairs, in a resumable order.

Ids come from sft's code path (`encode_conversation` with the model's chat template): the prompt, then
each reply with its `</s>`; only the final reply's tokens are learnt (earlier assistant turns of the
prompt are context). Each side is the sequence prompt + reply.

Truncation rule: a side may hold `seq_len + 1` tokens. When prompt + the longer reply does not fit, the
prompt loses tokens from its start (its end, the question just before the reply, is kept) and the pair
is counted as `truncated`; replies are never cut (a cut reply would teach a reply without `</s>`). When
the longer reply alone leaves fewer than `MIN_PROMPT` prompt tokens, the pair is set aside as
`too_long` (counted, first examples kept with path:line).

Batching: one row per pair, the chosen sequence then the rejected sequence back to back, positions
restarting at 0 for the second (transformers turns restarting `position_ids` into a block-diagonal
causal mask, as in sft's packed batching), so nothing is padded between the two sides; rows of a
micro-batch are padded at their end to the longest (rounded up to 8), pairs grouped by length as sft's
padded batching does. The prompt is computed twice, once per side.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from jalm.chat_template import LINE_CHAT_TEMPLATE, encode_conversation
from jalm.sft.dataset import ALIGN, IGNORE, Encoder

MIN_PROMPT = 8
CHOSEN, REJECTED = 1, 2  # segment ids of the learnt label positions of each side


@dataclass
class PairExample:
    prompt: np.ndarray  # int32 ids
    chosen: np.ndarray  # the reply's ids, `</s>` included
    rejected: np.ndarray
    source: str

    @property
    def positions(self) -> int:
        """Input positions of the row: both sides, each without its last token."""
        return 2 * len(self.prompt) + len(self.chosen) + len(self.rejected) - 2


@dataclass
class PairTokenizeStats:
    pairs: int = 0
    examples: int = 0
    truncated: int = 0  # prompts cut from the left to fit
    too_long: int = 0
    too_long_examples: list[str] = field(default_factory=list)
    prompt_tokens_cut: int = 0
    tokens: int = 0
    reply_tokens: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def encode_pair(
    pair, encoder: Encoder, template: str = LINE_CHAT_TEMPLATE
) -> tuple[list[int], list[int], list[int]]:
    """(prompt ids, chosen reply ids, rejected reply ids) through sft's encoding of each conversation."""
    sides = []
    for reply in (pair.chosen, pair.rejected):
        messages = [*pair.prompt, {"role": "assistant", "content": reply}]
        ids, mask = encode_conversation(
            messages, encoder.encode, encoder.special_ids, template, encoder.eos_token
        )
        end = len(mask)
        while end > 0 and not mask[end - 1]:  # pieces after the final reply teach nothing
            end -= 1
        start = end
        while start > 0 and mask[start - 1]:  # the final reply: the last run of reply tokens
            start -= 1
        sides.append((ids[:start], ids[start:end]))
    (prompt, chosen), (prompt_r, rejected) = sides
    if prompt != prompt_r:  # a prefix-stable template renders the same prompt before both replies
        raise ValueError(f"{pair.source}: the template renders the prompt differently before each reply")
    return prompt, chosen, rejected


def tokenize_pairs(
    pairs: Iterable, encoder: Encoder, seq_len: int, template: str = LINE_CHAT_TEMPLATE
) -> tuple[list[PairExample], PairTokenizeStats]:
    stats = PairTokenizeStats()
    examples = []
    limit = seq_len + 1
    for pair in pairs:
        stats.pairs += 1
        prompt, chosen, rejected = encode_pair(pair, encoder, template)
        room = limit - max(len(chosen), len(rejected))
        if room < min(MIN_PROMPT, len(prompt)) or room < 1:
            stats.too_long += 1
            if len(stats.too_long_examples) < 20:
                stats.too_long_examples.append(
                    f"{pair.source}: replies of {len(chosen)} and {len(rejected)} tokens, the context holds {limit}"
                )
            continue
        if len(prompt) > room:
            stats.truncated += 1
            stats.prompt_tokens_cut += len(prompt) - room
            prompt = prompt[len(prompt) - room :]
        example = PairExample(
            np.asarray(prompt, np.int32),
            np.asarray(chosen, np.int32),
            np.asarray(rejected, np.int32),
            pair.source,
        )
        examples.append(example)
        stats.examples += 1
        stats.tokens += example.positions + 2
        stats.reply_tokens += len(chosen) + len(rejected)
    return examples, stats


def collate_pairs(examples: Sequence[PairExample], indices: list[int], pad_id: int) -> dict[str, np.ndarray]:
    """A micro-batch: one row per pair (chosen then rejected, positions restarting), `segments` marking
    the label positions of each side's reply (CHOSEN, REJECTED, 0 elsewhere)."""
    width = -(-max(examples[i].positions for i in indices) // ALIGN) * ALIGN
    shape = (len(indices), width)
    input_ids = np.full(shape, pad_id, dtype=np.int64)
    labels = np.full(shape, IGNORE, dtype=np.int64)
    positions = np.zeros(shape, dtype=np.int64)
    segments = np.zeros(shape, dtype=np.int64)
    for r, index in enumerate(indices):
        example = examples[index]
        at = 0
        for segment, reply in ((CHOSEN, example.chosen), (REJECTED, example.rejected)):
            ids = np.concatenate([example.prompt, reply])
            n = len(ids) - 1
            input_ids[r, at : at + n] = ids[:-1]
            positions[r, at : at + n] = np.arange(n)
            learnt = slice(at + len(example.prompt) - 1, at + n)
            labels[r, learnt] = ids[len(example.prompt) :]
            segments[r, learnt] = segment
            at += n
        positions[r, at:] = np.arange(width - at)  # the padding is a sequence of its own
    return {"input_ids": input_ids, "labels": labels, "position_ids": positions, "segments": segments}
