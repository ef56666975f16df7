"""`jalm generate`: sample continuations from any Hugging Face causal-LM directory, streamed as they are made (the package docstring says more)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jalm.errors import JalmError

PROMPT = "おはようございます、今日の天気は"
DEFAULT_MAX_NEW_TOKENS = 50
# transformers' text-generation pipeline samples at this temperature unless the call or the model's
# generation_config.json says otherwise (4.x and 5.x alike); we do the same so that results match it.
PIPELINE_TEMPERATURE = 0.7


@dataclass
class Sampling:
    """Generation arguments with the names of transformers' `generate` (None = the model's default)."""

    max_new_tokens: int | None = None
    max_length: int | None = None  # total tokens including the prompt, as in LINE's pipeline call
    do_sample: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    num_return_sequences: int = 1
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    def generate_kwargs(self) -> dict[str, Any]:
        names = (
            "max_new_tokens",
            "max_length",
            "do_sample",
            "temperature",
            "top_p",
            "top_k",
            "repetition_penalty",
        )
        kwargs = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        kwargs["num_return_sequences"] = self.num_return_sequences
        return kwargs


@dataclass
class Completion:
    text: str  # the continuation only (no prompt), cut before any stop string
    finish_reason: str  # "stop" (end of text or a stop string), "length" or "cancelled"
    tokens: int  # tokens generated for this sequence, up to and including the one that ended it


class IncrementalDecoder:
    """Turns token ids into text deltas that add up to the decoded text of the whole sequence.

    Decoding a window of a few earlier tokens keeps spacing right at the seam (SentencePiece decoders treat
    a leading "▁" specially). Text is held back while the newest token is a byte-fallback piece (<0xE3>…):
    the decoder reads a run of byte pieces as one UTF-8 string, so a later byte can still change how the
    run decodes; and while the text ends in U+FFFD (an incomplete character, for byte-level BPE).
    """

    def __init__(self, tokenizer, context_ids: Sequence[int] = (), byte_ids: frozenset[int] | None = None):
        self.tokenizer = tokenizer
        self.byte_ids = byte_piece_ids(tokenizer) if byte_ids is None else byte_ids
        self.ids = list(context_ids)
        self.prefix_offset = max(0, len(self.ids) - 5)
        self.read_offset = len(self.ids)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def push(self, token_id: int) -> str:
        self.ids.append(int(token_id))
        return self._delta(final=False)

    def flush(self) -> str:
        return self._delta(final=True)

    def _delta(self, final: bool) -> str:
        if not final and self.ids and self.ids[-1] in self.byte_ids:
            return ""
        before = self._decode(self.ids[self.prefix_offset : self.read_offset])
        after = self._decode(self.ids[self.prefix_offset :])
        if len(after) > len(before) and (final or not after.endswith("\ufffd")):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return after[len(before) :]
        return ""


def byte_piece_ids(tokenizer) -> frozenset[int]:
    """Ids of the 256 byte-fallback pieces <0x00>…<0xFF> (empty for a tokenizer without them)."""
    pieces = [f"<0x{b:02X}>" for b in range(256)]
    ids = tokenizer.convert_tokens_to_ids(pieces)
    return frozenset(i for i, piece in zip(ids, pieces) if i is not None and i != tokenizer.unk_token_id)


class _Sequence:
    def __init__(self, tokenizer, context_ids: Sequence[int], byte_ids: frozenset[int]):
        self.decoder = IncrementalDecoder(tokenizer, context_ids, byte_ids)
        self.text = ""  # decoded so far, including text held back because it may begin a stop string
        self.sent = 0  # characters of `text` already reported
        self.tokens = 0
        self.finish_reason: str | None = None


class BatchStreamer:
    """The `streamer` handed to `model.generate`: follows every sequence of the batch.

    generate() calls put() first with the prompt (skipped), then once per step with one token per
    sequence, then end(); finish() flushes what is left. Tokens after a sequence finished (padding) are
    ignored.
    """

    def __init__(
        self,
        tokenizer,
        context_ids: Sequence[int],
        n: int,
        eos_ids: set[int],
        stop: Sequence[str] = (),
        on_text: Callable[[int, str], None] | None = None,
    ):
        byte_ids = byte_piece_ids(tokenizer)
        self.sequences = [_Sequence(tokenizer, context_ids, byte_ids) for _ in range(n)]
        self.eos_ids, self.stop, self.on_text = eos_ids, [s for s in stop if s], on_text
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for index, token in enumerate(value.reshape(len(self.sequences), -1)[:, -1].tolist()):
            seq = self.sequences[index]
            if seq.finish_reason is not None:
                continue
            seq.tokens += 1
            if token in self.eos_ids:
                self._add(index, seq.decoder.flush(), final=True)
                seq.finish_reason = seq.finish_reason or "stop"
            else:
                self._add(index, seq.decoder.push(token), final=False)

    def end(self) -> None:
        """generate() is done; `finish` decides why the unfinished sequences ended."""

    def finish(self, reason: str = "length") -> None:
        for index, seq in enumerate(self.sequences):
            if seq.finish_reason is None:
                self._add(index, seq.decoder.flush(), final=True)
                seq.finish_reason = seq.finish_reason or reason

    @property
    def finished(self) -> list[bool]:
        return [seq.finish_reason is not None for seq in self.sequences]

    def _add(self, index: int, delta: str, final: bool) -> None:
        seq = self.sequences[index]
        seq.text += delta
        cut = min((i for i in (seq.text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            seq.text, seq.finish_reason, final = seq.text[:cut], "stop", True
        # Hold back a tail that could still grow into a stop string.
        safe = len(seq.text) if final else len(seq.text) - _stop_prefix_len(seq.text, self.stop)
        if safe > seq.sent:
            if self.on_text is not None:
                self.on_text(index, seq.text[seq.sent : safe])
            seq.sent = safe

    def results(self) -> list[Completion]:
        return [Completion(s.text, s.finish_reason or "length", s.tokens) for s in self.sequences]


def _stop_prefix_len(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of `text` that is the beginning of a stop string."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


# Config keys that hold the context length; the first three in the order jp-stable's evaluation harness
# reads them (jalm eval depends on it when two disagree), seq_length (e.g. ChatGLM) last.
CONTEXT_KEYS = ("n_positions", "max_position_embeddings", "n_ctx", "seq_length")
DEFAULT_CONTEXT = 2048


def context_length(model_or_config, default: int | None = DEFAULT_CONTEXT) -> int | None:
    """The number of positions the model was built for (prompt + generated tokens must fit).

    Takes a model, its config or config.json as a dict; the first positive integer among `CONTEXT_KEYS`
    wins. `default` is the answer when none is set (None: unknown, as the model card says).
    """
    config = getattr(model_or_config, "config", model_or_config)
    for name in CONTEXT_KEYS:
        value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """Prompt ids as LINE's pipeline makes them: no BOS, and never a trailing </s>."""
    return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def _eos_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def check_sampling(sampling: Sampling, prompt_tokens: int, context: int) -> int:
    """Validate the arguments against the prompt and the model's context; return max new tokens."""
    if sampling.max_length is not None and sampling.max_new_tokens is not None:
        raise JalmError("give either max_length (total tokens) or max_new_tokens, not both")
    if sampling.num_return_sequences < 1:
        raise JalmError(f"num_return_sequences must be at least 1, got {sampling.num_return_sequences}")
    if sampling.num_return_sequences > 1 and sampling.do_sample is False:
        raise JalmError("greedy decoding gives one sequence; sample (do_sample) to get several")
    for name in ("temperature", "top_p", "repetition_penalty"):
        value = getattr(sampling, name)
        if value is not None and value <= 0:
            raise JalmError(f"{name} must be positive, got {value}")
    if sampling.top_p is not None and sampling.top_p > 1:
        raise JalmError(f"top_p must be at most 1, got {sampling.top_p}")
    if sampling.top_k is not None and sampling.top_k < 0:
        raise JalmError(f"top_k must be 0 (off) or positive, got {sampling.top_k}")
    if sampling.max_length is not None:
        new = sampling.max_length - prompt_tokens
        if new < 1:
            raise JalmError(
                f"max_length {sampling.max_length} leaves no room after the prompt's {prompt_tokens} tokens"
            )
    else:
        new = sampling.max_new_tokens if sampling.max_new_tokens is not None else DEFAULT_MAX_NEW_TOKENS
        if new < 1:
            raise JalmError(f"max_new_tokens must be at least 1, got {new}")
    if prompt_tokens + new > context:
        raise JalmError(
            f"prompt ({prompt_tokens} tokens) + {new} new tokens exceed the model's context of {context} tokens"
        )
    return new


def complete(
    model,
    tokenizer,
    prompt_ids: Sequence[int],
    sampling: Sampling,
    on_text: Callable[[int, str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> list[Completion]:
    """Run one generation for one prompt; `on_text(index, delta)` sees each sequence's text as it grows.

    `cancelled()` is polled every step; when it returns True, every sequence stops ("cancelled").
    An empty prompt starts from the end-of-text token, i.e. at the start of a new document.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, set_seed

    eos_ids = _eos_ids(model, tokenizer)
    context = list(prompt_ids) or [
        tokenizer.bos_token_id if tokenizer.bos_token_id is not None else min(eos_ids)
    ]
    new_tokens = check_sampling(sampling, len(context), context_length(model))
    n = sampling.num_return_sequences
    streamer = BatchStreamer(tokenizer, context, n, eos_ids, sampling.stop, on_text)
    is_cancelled = cancelled or (lambda: False)

    class _Stop(StoppingCriteria):  # ends sequences that hit a stop string, or all of them on cancel
        def __call__(self, input_ids, scores, **kwargs):
            if is_cancelled():
                return torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            return torch.tensor(streamer.finished, dtype=torch.bool, device=input_ids.device)

    kwargs = sampling.generate_kwargs()
    kwargs.pop("max_length", None)
    kwargs["max_new_tokens"] = new_tokens
    model_defaults = model.generation_config.to_diff_dict()
    if not kwargs.get("do_sample", model_defaults.get("do_sample", False)):
        for name in ("temperature", "top_p", "top_k"):  # greedy: sampling knobs only make transformers warn
            kwargs.pop(name, None)
    elif "temperature" not in kwargs and "temperature" not in model_defaults:
        kwargs["temperature"] = PIPELINE_TEMPERATURE
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
    device = next(model.parameters()).device
    input_ids = torch.tensor([context], dtype=torch.long, device=device)
    if sampling.seed is not None:
        set_seed(sampling.seed)
    with torch.inference_mode():
        model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([_Stop()]),
            pad_token_id=pad,
            **kwargs,
        )
    streamer.finish("cancelled" if is_cancelled() else "length")
    return streamer.results()


def load(model_dir: str | Path, device: str = "cpu", dtype: str = "float32"):
    """(model, tokenizer) from a model directory, with one-line errors for what is missing."""
    from jalm.hf import check_model_dir, load_model, load_tokenizer

    check_model_dir(model_dir)
    return load_model(model_dir, device=device, dtype=dtype), load_tokenizer(model_dir)


def generate(
    model: str | Path | tuple,
    prompt: str = PROMPT,
    *,
    max_length: int | None = None,
    max_new_tokens: int | None = None,
    do_sample: bool | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    repetition_penalty: float | None = None,
    num_return_sequences: int = 1,
    seed: int | None = None,
    stop: Sequence[str] = (),
    return_full_text: bool = True,
    on_text: Callable[[int, str], None] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> list[str]:
    """Continuations of `prompt` from a model directory or a (model, tokenizer) pair.

    Arguments left at None take the model's generation defaults, and sampling runs at temperature 0.7
    unless told otherwise, as in the pipeline. With
    `return_full_text` (the pipeline's default) each text starts with the prompt.
    """
    model_obj, tokenizer = load(model, device, dtype) if isinstance(model, (str, Path)) else model
    sampling = Sampling(
        max_new_tokens,
        max_length,
        do_sample,
        temperature,
        top_p,
        top_k,
        repetition_penalty,
        num_return_sequences,
        seed,
        list(stop),
    )
    results = complete(model_obj, tokenizer, encode_prompt(tokenizer, prompt), sampling, on_text)
    return [(prompt + r.text) if return_full_text else r.text for r in results]


def chat(
    model: str | Path | tuple,
    messages: Sequence[dict],
    *,
    max_length: int | None = None,
    max_new_tokens: int | None = None,
    do_sample: bool | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    repetition_penalty: float | None = None,
    num_return_sequences: int = 1,
    seed: int | None = None,
    stop: Sequence[str] = (),
    on_text: Callable[[int, str], None] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> list[str]:
    """The model's replies to a conversation (`[{"role": "user", "content": ...}, ...]`), as the server gives them.

    The prompt is the model's chat template (or LINE's sft format, with a UserWarning carrying
    `jalm.chat.NO_TEMPLATE_NOTICE`, for a model without one); replies end at `</s>`.
    """
    import warnings

    from jalm.chat import chat_prompt_ids, chat_stops

    model_obj, tokenizer = load(model, device, dtype) if isinstance(model, (str, Path)) else model
    prompt_ids, notice = chat_prompt_ids(tokenizer, messages)
    if notice is not None:
        warnings.warn(notice, stacklevel=2)
    stops = list(stop) + [s for s in chat_stops(tokenizer) if s not in stop]
    sampling = Sampling(
        max_new_tokens,
        max_length,
        do_sample,
        temperature,
        top_p,
        top_k,
        repetition_penalty,
        num_return_sequences,
        seed,
        stops,
    )
    return [r.text for r in complete(model_obj, tokenizer, prompt_ids, sampling, on_text)]
