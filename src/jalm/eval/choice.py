"""Multiple-choice log-likelihoods: sum of log p(continuation tokens | context), as jp-stable scores them.

A request is one context and its choices, each already token ids (jp-stable encodes the context and each
continuation separately, with no special tokens). Two scorers give the same numbers:

- `score_alone`: each (context + choice) is its own sequence, right-padded into batches of `batch_size`
  (jp-stable's `_loglikelihood_tokens`): the context is encoded once per choice;
- `score_shared`: the context is encoded once with a KV cache, the cache is repeated for the choices and
  all choices go through in one right-padded batch; the first token of every choice is scored from the
  context's last position. Right padding needs no attention mask: a padded position comes after every real
  token of its row, so no real token attends to it.

Where context + choice is longer than the model's context, jp-stable keeps the last `max_length + 1`
tokens; such a request is scored alone (the truncation differs per choice) and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jalm.errors import JalmError
from jalm.eval.lm import LM, output_cache


@dataclass(frozen=True)
class ChoiceRequest:
    context: tuple[int, ...]
    choices: tuple[tuple[int, ...], ...]

    def fits(self, max_length: int) -> bool:
        return all(len(self.context) + len(c) <= max_length + 1 for c in self.choices)


def make_request(lm: LM, context: str, choices: Sequence[str]) -> ChoiceRequest:
    """Encode the context and each choice separately (no special tokens), as jp-stable does."""
    ctx = tuple(lm.encode(context))
    conts = tuple(tuple(lm.encode(c)) for c in choices)
    if not ctx:
        raise JalmError("empty multiple-choice context")
    if any(not c for c in conts):
        raise JalmError(f"a choice encodes to no tokens: {list(choices)!r}")
    return ChoiceRequest(ctx, conts)


def _window(lm: LM, ctx: Sequence[int], cont: Sequence[int]) -> tuple[list[int], int]:
    """jp-stable's input: (ctx + cont)[-(max_length + 1):][:-1], and how many continuation tokens it scores."""
    whole = (list(ctx) + list(cont))[-(lm.max_length + 1) :]
    return whole[:-1], len(cont)


def score_alone(lm: LM, requests: Sequence[ChoiceRequest], batch_size: int = 8) -> list[list[float]]:
    """Log-likelihood of every choice, each (context + choice) its own sequence."""
    import torch

    flat = [(r, k) for r, req in enumerate(requests) for k in range(len(req.choices))]
    out = [[0.0] * len(req.choices) for req in requests]
    with torch.inference_mode():
        for start in range(0, len(flat), batch_size):
            chunk = flat[start : start + batch_size]
            windows = [_window(lm, requests[r].context, requests[r].choices[k]) for r, k in chunk]
            width = max(len(w) for w, _ in windows)
            ids = torch.full((len(chunk), width), lm.pad_id, dtype=torch.long)
            for row, (w, _) in enumerate(windows):
                ids[row, : len(w)] = torch.tensor(w, dtype=torch.long)
            logprobs = torch.log_softmax(lm.model(input_ids=ids.to(lm.device)).logits.float(), dim=-1)
            for row, ((r, k), (w, n)) in enumerate(zip(chunk, windows)):
                cont = torch.tensor(requests[r].choices[k], dtype=torch.long, device=logprobs.device)
                picked = logprobs[row, len(w) - n : len(w)].gather(-1, cont[:, None])
                out[r][k] = float(picked.sum())
    return out


def _score_one_shared(lm: LM, req: ChoiceRequest) -> list[float]:
    import torch

    ctx = torch.tensor([req.context], dtype=torch.long, device=lm.device)
    output = lm.model(input_ids=ctx, use_cache=True)
    first = torch.log_softmax(output.logits[0, -1].float(), dim=-1)
    scores = [float(first[c[0]]) for c in req.choices]
    longest = max(len(c) for c in req.choices)
    if longest == 1:
        return scores
    cache = output_cache(output)
    n = len(req.choices)
    cache.batch_repeat_interleave(n)
    width = longest - 1  # the last token of a choice is predicted, never fed
    ids = torch.full((n, width), lm.pad_id, dtype=torch.long)
    for row, c in enumerate(req.choices):
        ids[row, : len(c) - 1] = torch.tensor(c[:-1], dtype=torch.long)
    call = {"input_ids": ids.to(lm.device), lm.cache_kwarg: cache, "use_cache": True}
    if lm.accepts_position_ids:
        call["position_ids"] = torch.arange(len(req.context), len(req.context) + width, device=lm.device)[
            None
        ].expand(n, -1)
    logprobs = torch.log_softmax(lm.model(**call).logits.float(), dim=-1)
    for row, c in enumerate(req.choices):
        if len(c) > 1:
            rest = torch.tensor(c[1:], dtype=torch.long, device=logprobs.device)
            scores[row] += float(logprobs[row, : len(c) - 1].gather(-1, rest[:, None]).sum())
    return scores


def score_shared(
    lm: LM,
    requests: Sequence[ChoiceRequest],
    batch_size: int = 8,
    progress: Callable[[int], object] | None = None,
) -> tuple[list[list[float]], int]:
    """Log-likelihood of every choice, the context encoded once per request; also how many requests were
    too long for the context and were scored alone instead."""
    import torch

    out: list[list[float]] = [[] for _ in requests]
    too_long = [i for i, req in enumerate(requests) if not req.fits(lm.max_length)]
    skip = set(too_long)
    with torch.inference_mode():
        for i, req in enumerate(requests):
            if i not in skip:
                out[i] = _score_one_shared(lm, req)
            if progress is not None:
                progress(1)
    if too_long:
        for i, scores in zip(too_long, score_alone(lm, [requests[i] for i in too_long], batch_size)):
            out[i] = scores
    return out, len(too_long)
