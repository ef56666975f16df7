"""Continuous batching: many generations share each forward pass, joining and leaving between steps.

A `Job` is one request (a prompt, its `Sampling`, a text callback, a cancel flag). `BatchDecoder.start`
prefills a new job on its own, exactly as `model.generate` does (the prompt's causal forward, its key/value
cache, the first token); `BatchDecoder.step` then feeds the last token of every running job through one
forward, samples each job's next token with its own settings, and returns the jobs that finished, so that
new jobs join and finished ones leave between steps.

Why a job's output does not depend on its companions (the tests check every step's logits bit for bit,
and the texts):
- rows never see each other: attention runs per job over that job's own keys and values (`_ragged_attention`,
  the same `sdpa` call a lone `generate` makes, no padding, no mask), and every other layer works row by row;
- the matrix products do see the batch size: on this CPU (PyTorch 2.13, MKL, fp32) a row of `x @ W` comes
  out in the last bit differently for 1-3, 5-7 and 9-11 rows than for 4, 8 or 12 and more. So the batch is
  padded with idle rows to a multiple of `ROW_MULTIPLE`, and a job decoded alone is padded the same way
  (7 jobs of 24 greedy tokens, alone vs together: 168 of 168 steps bit-identical padded, 7 of 168 not);
- sampling draws from a per-job `torch.Generator` seeded with the job's seed: the generator `set_seed` gives
  `generate`, consumed by the same `multinomial` calls in the same order, whoever else is in the batch;
- the logits processors (temperature, top-k, top-p, repetition penalty, the model's generation_config) are
  the ones `generate` builds, from transformers' own code.
Against `complete()` (`model.generate` on a batch of its own) the prefill and the first token are bit for bit
the same; later steps can differ in the last bit (the padding above), which changes a token only at a near
tie: none in the tests' and the benchmark's comparisons.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jalm.generate.generation import (
    PIPELINE_TEMPERATURE,
    BatchStreamer,
    Completion,
    Sampling,
    _eos_ids,
    check_sampling,
    context_length,
)

log = logging.getLogger("jalm.generate")

RAGGED = "jalm_ragged"  # the attention implementation name the decode steps switch to
ROW_MULTIPLE = 4  # batch rows are padded to a multiple of this (see the module docstring)
SUPPORTED_ATTENTION = ("sdpa", "eager")


@dataclass(eq=False)  # a job is itself: compared by identity, never field by field (tensors)
class Job:
    """One generation request as the model thread sees it."""

    prompt_ids: Sequence[int]
    sampling: Sampling
    on_text: Callable[[int, str], None] | None = None
    cancelled: Callable[[], bool] = lambda: False
    # Set when the job starts:
    streamer: BatchStreamer | None = None
    rows: int = 0
    limit: int = 0  # new tokens allowed
    made: int = 0  # decoding steps done (tokens per row so far)
    ids: Any = None  # [rows, length] prompt + generated ids (the logits processors read them)
    keys: list = field(default_factory=list)  # per layer [rows, heads, length, head_dim]
    values: list = field(default_factory=list)
    processors: Any = None
    generator: Any = None
    do_sample: bool = False
    results: list[Completion] | None = None  # set when the job is over

    @property
    def length(self) -> int:
        return self.ids.shape[1]


@dataclass
class _Rows:
    """What the ragged attention needs for one decode step: the jobs in row order, and idle rows at the end."""

    jobs: list[Job]
    attend: Callable  # the model's own attention function (sdpa or eager)
    idle: int


def _ragged_attention(module, query, key, value, attention_mask, **kwargs):
    """Attention for one decode step over jobs of different lengths: each job attends to its own cache.

    `key`/`value` hold the step's new entries for every row; they are appended to each job's cache (as
    DynamicCache.update does) and the model's own attention function runs on that job's rows alone.
    """
    import torch

    rows: _Rows = kwargs.pop("jalm_rows")
    layer = module.layer_idx
    outputs, start = [], 0
    for job in rows.jobs:
        stop = start + job.rows
        job.keys[layer] = torch.cat([job.keys[layer], key[start:stop]], dim=-2)
        job.values[layer] = torch.cat([job.values[layer], value[start:stop]], dim=-2)
        out, _ = rows.attend(module, query[start:stop], job.keys[layer], job.values[layer], None, **kwargs)
        outputs.append(out)
        start = stop
    if rows.idle:
        outputs.append(outputs[0].new_zeros((rows.idle, *outputs[0].shape[1:])))
    return torch.cat(outputs), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(RAGGED, _ragged_attention)


def unsupported(model) -> str | None:
    """Why this model cannot be decoded in batches here (None when it can)."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return "an encoder-decoder model"
    implementation = getattr(config, "_attn_implementation", None)
    if implementation not in SUPPORTED_ATTENTION:
        return f"attention implementation {implementation!r} (batching supports {', '.join(SUPPORTED_ATTENTION)})"
    if not getattr(model, "_supports_attention_backend", False):
        return f"{type(model).__name__} does not route its attention through transformers' AttentionInterface"
    if getattr(config, "reorder_and_upcast_attn", False):
        return "GPT-2's reorder_and_upcast_attn"
    if getattr(config, "sliding_window", None):
        return "sliding-window attention"
    return None


class BatchDecoder:
    """Runs jobs on one model, a decoding step at a time, all running jobs in each step's forward.

    Not thread-safe: one thread (the server's model thread) owns the decoder and the model.
    """

    def __init__(self, model, tokenizer, row_multiple: int = ROW_MULTIPLE):
        import torch
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"cannot batch {type(model).__name__}: {reason}")
        _register()
        self.model, self.tokenizer, self.row_multiple = model, tokenizer, row_multiple
        self.device = next(model.parameters()).device
        self.context = context_length(model)
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.layers = model.config.num_hidden_layers
        implementation = model.config._attn_implementation
        if implementation == "sdpa":
            self.attend = sdpa_attention_forward
        else:  # eager: the modelling module's own function
            self.attend = inspect.getmodule(type(model)).eager_attention_forward
        forward = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in forward else "past_key_values"
        self.keep_arg = "logits_to_keep" in forward
        self.active: list[Job] = []
        self.steps = 0  # decoding steps run
        self.peak_rows = 0  # most sequences decoded in one step
        self._torch = torch

    @property
    def rows(self) -> int:
        return sum(job.rows for job in self.active)

    # ---- joining ---------------------------------------------------------------------------------------

    def start(self, job: Job) -> bool:
        """Prefill `job` alone and pick its first token; True while it still runs (then it is in `active`)."""
        torch = self._torch
        from transformers import DynamicCache

        context = list(job.prompt_ids) or [
            self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else min(self.eos_ids)
        ]
        job.limit = check_sampling(job.sampling, len(context), self.context)
        job.rows = job.sampling.num_return_sequences
        job.streamer = BatchStreamer(
            self.tokenizer, context, job.rows, self.eos_ids, job.sampling.stop, job.on_text
        )
        job.streamer.prompt_seen = True
        self._prepare_sampling(job, len(context))
        # As generate() does: the prompt repeated once per sequence, positions from the attention mask.
        job.ids = torch.tensor([context] * job.rows, dtype=torch.long, device=self.device)
        mask = torch.ones_like(job.ids)
        try:
            cache = DynamicCache(config=self.model.config)
        except TypeError:  # transformers < 4.56
            cache = DynamicCache()
        kwargs = {self.cache_arg: cache}
        if self.keep_arg:
            kwargs["logits_to_keep"] = 1
        with torch.inference_mode():
            out = self.model(
                input_ids=job.ids,
                attention_mask=mask,
                position_ids=mask.long().cumsum(-1) - 1,
                use_cache=True,
                **kwargs,
            )
        job.keys = [cache.layers[i].keys for i in range(self.layers)]
        job.values = [cache.layers[i].values for i in range(self.layers)]
        if self._advance(job, out.logits[:, -1]):
            self.active.append(job)
            return True
        return False

    def _prepare_sampling(self, job: Job, prompt_tokens: int) -> None:
        """The logits processors and generator generate() would use for this job (its own private code)."""
        torch = self._torch
        from transformers import LogitsProcessorList

        kwargs = job.sampling.generate_kwargs()
        kwargs.pop("max_length", None)
        kwargs["max_new_tokens"] = job.limit
        defaults = self.model.generation_config.to_diff_dict()
        if not kwargs.get("do_sample", defaults.get("do_sample", False)):
            for name in ("temperature", "top_p", "top_k"):
                kwargs.pop(name, None)
        elif "temperature" not in kwargs and "temperature" not in defaults:
            kwargs["temperature"] = PIPELINE_TEMPERATURE  # as complete() does
        config, _ = self.model._prepare_generation_config(None, **kwargs)
        job.do_sample = bool(config.do_sample)
        job.processors = self.model._get_logits_processor(
            generation_config=config,
            input_ids_seq_length=prompt_tokens,
            encoder_input_ids=None,
            prefix_allowed_tokens_fn=None,
            logits_processor=LogitsProcessorList(),
            device=self.device,
            model_kwargs={},
        )
        if job.do_sample:
            # set_seed(seed) seeds the default generator with manual_seed(seed): the same stream, per job.
            job.generator = torch.Generator(device=self.device)
            if job.sampling.seed is not None:
                job.generator.manual_seed(job.sampling.seed)
            else:
                job.generator.seed()

    # ---- one step for every running job ----------------------------------------------------------------

    def step(self) -> list[Job]:
        """One forward over all running jobs; returns the jobs that finished (removed from `active`)."""
        torch = self._torch
        finished = [job for job in self.active if job.cancelled() and self._end(job, "cancelled")]
        self.active = [job for job in self.active if job.results is None]
        if not self.active:
            return finished
        jobs = self.active
        rows = sum(job.rows for job in jobs)
        self.steps, self.peak_rows = self.steps + 1, max(self.peak_rows, rows)
        idle = -rows % self.row_multiple
        last = torch.cat([job.ids[:, -1:] for job in jobs])
        positions = torch.cat(
            [torch.full((job.rows, 1), job.length - 1, dtype=torch.long, device=self.device) for job in jobs]
        )
        if idle:
            zeros = torch.zeros((idle, 1), dtype=torch.long, device=self.device)
            last, positions = torch.cat([last, zeros + self.pad]), torch.cat([positions, zeros])
        config = self.model.config
        implementation = config._attn_implementation
        config._attn_implementation = RAGGED
        try:
            with torch.inference_mode():
                logits = self.model(
                    input_ids=last,
                    position_ids=positions,
                    use_cache=False,
                    jalm_rows=_Rows(jobs, self.attend, idle),
                ).logits[:, -1]
        finally:
            config._attn_implementation = implementation
        start, still = 0, []
        for job in jobs:
            stop = start + job.rows
            (still if self._advance(job, logits[start:stop]) else finished).append(job)
            start = stop
        self.active = still
        return finished

    def _advance(self, job: Job, logits) -> bool:
        """Pick the job's next tokens from its rows' logits, stream them; False once the job is over."""
        torch = self._torch
        with torch.inference_mode():
            scores = logits.to(copy=True, dtype=torch.float32)
            if job.processors:
                scores = job.processors(job.ids, scores)
            if job.do_sample:
                probs = torch.nn.functional.softmax(scores, dim=-1)
                tokens = torch.multinomial(probs, num_samples=1, generator=job.generator).squeeze(1)
            else:
                tokens = torch.argmax(scores, dim=-1)
            done = job.streamer.finished
            if any(done):  # finished sequences are fed padding, as in generate()
                tokens = torch.where(torch.tensor(done, device=tokens.device), self.pad, tokens)
            job.ids = torch.cat([job.ids, tokens[:, None]], dim=-1)
        job.streamer.put(tokens.cpu())
        job.made += 1
        if all(job.streamer.finished):
            return not self._end(job, "stop")
        if job.cancelled():
            return not self._end(job, "cancelled")
        if job.made >= job.limit:
            return not self._end(job, "length")
        return True

    def _end(self, job: Job, reason: str) -> bool:
        job.streamer.finish(reason)
        job.results = job.streamer.results()
        job.keys, job.values, job.ids = [], [], None  # free the cache now, not when the caller drops the job
        return True

    def fail_all(self) -> list[Job]:
        """Drop every running job (after an error in a shared step); returns them."""
        jobs, self.active = self.active, []
        for job in jobs:
            job.keys, job.values = [], []
        return jobs


def generate_batched(
    model, tokenizer, requests: Sequence[tuple[Sequence[int], Sampling]], row_multiple: int = ROW_MULTIPLE
) -> list[list[Completion]]:
    """Run several requests together, all joining at once (tests and benchmarks); results in request order."""
    decoder = BatchDecoder(model, tokenizer, row_multiple)
    jobs = [Job(ids, sampling) for ids, sampling in requests]
    for job in jobs:
        decoder.start(job)
    while decoder.active:
        decoder.step()
    return [job.results or [] for job in jobs]
