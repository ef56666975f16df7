"""Batched greedy decoding with left padding and a KV cache, stopped per sequence.

Each prompt has its own limit of new tokens; all share one stop string (or none); a sequence is finished
when it emits an end-of-sequence token, reaches its limit, or its decoded continuation contains the stop
string. The prediction is the continuation decoded without special tokens and cut at the first stop string, which is
exactly what generating one prompt at a time and cutting afterwards gives (jp-stable's `greedy_until`).

Prompts are sorted by length so that a batch pads little; results come back in the input order. Position
ids are computed from the attention mask, so left padding does not shift positions (this matters for
learned absolute positions, GPT-2, as much as for rotary ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jalm.errors import JalmError
from jalm.eval.lm import LM, output_cache


@dataclass(frozen=True)
class Prompt:
    """Token ids ready for the model (already fitted to the context) and the new-token limit."""

    ids: tuple[int, ...]
    max_new_tokens: int
    truncated: bool


def fit_prompt(lm: LM, ids: Sequence[int], max_new_tokens: int) -> Prompt:
    """Keep the last `max_length - max_new_tokens` prompt tokens (left truncation, as jp-stable does).

    Truncation is reported on the Prompt (and counted in the results), never silent.
    """
    if max_new_tokens < 1:
        raise JalmError(f"max new tokens must be at least 1, got {max_new_tokens}")
    room = lm.max_length - max_new_tokens
    if room < 1:
        raise JalmError(
            f"{lm.model_dir}: context of {lm.max_length} tokens leaves no room for a prompt "
            f"before {max_new_tokens} new tokens"
        )
    ids = tuple(int(i) for i in ids)
    if not ids:
        raise JalmError("empty prompt: a causal LM needs at least one token to continue")
    if len(ids) > room:
        return Prompt(ids[-room:], max_new_tokens, True)
    return Prompt(ids, max_new_tokens, False)


def greedy_until(
    lm: LM,
    prompts: Sequence[Prompt],
    stop: str | None,
    batch_size: int = 8,
    progress: bool = True,
    desc: str = "generate",
) -> list[str]:
    """Greedy continuations of `prompts`, each cut at the first `stop` (None: no stop string), in the order given."""
    from jalm.progress import progress_bar

    if batch_size < 1:
        raise JalmError(f"batch size must be at least 1, got {batch_size}")
    # Longest first (as jp-stable's Reorderer): similar lengths share a batch, and a memory problem shows early.
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i].ids))
    results: list[str] = [""] * len(prompts)
    with progress_bar(
        total=len(prompts), desc=desc, unit="ex", disable=not progress, dynamic_ncols=True
    ) as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            texts = _greedy_batch(lm, [prompts[i] for i in chunk], stop)
            for i, text in zip(chunk, texts):
                results[i] = text
            bar.update(len(chunk))
    return results


def _greedy_batch(lm: LM, prompts: Sequence[Prompt], stop: str | None) -> list[str]:
    import torch

    device = lm.device
    width = max(len(p.ids) for p in prompts)
    input_ids = torch.full((len(prompts), width), lm.pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt.ids) :] = torch.tensor(prompt.ids, dtype=torch.long)
        mask[row, width - len(prompt.ids) :] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)

    generated: list[list[int]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    limit = max(p.max_new_tokens for p in prompts)
    kwargs = {"use_cache": True}
    if lm.logits_kwarg:
        kwargs[lm.logits_kwarg] = 1  # only the last position's logits are needed
    with torch.inference_mode():
        step_ids, cache = input_ids, None
        for _ in range(limit):
            call = dict(kwargs, input_ids=step_ids, attention_mask=mask)
            if lm.accepts_position_ids:
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                call["position_ids"] = positions[:, -step_ids.shape[1] :]
            if cache is not None:
                call[lm.cache_kwarg] = cache
            output = lm.model(**call)
            cache = output_cache(output)
            next_ids = output.logits[:, -1, :].argmax(dim=-1).tolist()
            for row, token in enumerate(next_ids):
                if done[row]:
                    continue
                if token in lm.eos_ids:
                    done[row] = True
                    continue
                generated[row].append(token)
                if len(generated[row]) >= prompts[row].max_new_tokens or (
                    stop is not None and stop in lm.decode(generated[row])
                ):
                    done[row] = True
            if all(done):
                break
            # Finished rows ride along on masked padding (their outputs are ignored); masking it also keeps
            # their positions from growing past the context of models with learned positions (GPT-2).
            step_ids = torch.tensor(
                [[lm.pad_id if done[row] else generated[row][-1]] for row in range(len(prompts))],
                dtype=torch.long,
                device=device,
            )
            step_mask = torch.tensor([[0 if d else 1] for d in done], dtype=mask.dtype, device=device)
            mask = torch.cat([mask, step_mask], dim=1)
    texts = [lm.decode(ids) for ids in generated]
    return [text.split(stop)[0] for text in texts] if stop is not None else texts
