"""Sequence log-probabilities of both sides of a pair, and the four preference losses.

Notation per pair: π_c, π_r the policy's summed log-probabilities of the chosen and rejected reply
tokens (their `</s>` included), ref_c, ref_r the reference's, n_c, n_r the reply lengths, β the
strength (--beta).

- dpo (Rafailov et al. 2023, "Direct Preference Optimization", eq. 7): -log σ(β[(π_c - ref_c) -
  (π_r - ref_r)]); β 0.1. Rewards β(π - ref).
- ipo (Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
  Preferences", eq. 17): ((π_c - ref_c) - (π_r - ref_r) - 1/(2τ))², τ = β 0.1, on summed
  log-probabilities as in the paper (TRL averages them over tokens instead). Rewards β(π - ref).
- simpo (Meng et al. 2024, "SimPO", eq. 6): -log σ(β π_c/n_c - β π_r/n_r - γ), β 2.0, γ 0.5, no
  reference. Rewards β π/n.
- orpo (Hong et al. 2024, "ORPO", eq. 6-7): NLL(chosen) + λ · -log σ(log odds_c - log odds_r), with
  log odds = p̄ - log(1 - exp p̄), p̄ = π/n the mean token log-probability, NLL(chosen) = -π_c/n_c,
  λ = β 0.1, no reference. Rewards β π/n (as TRL reports them).
Every loss is the mean over the pairs of a micro-batch; the Trainer weights micro-batches by pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from jalm.dpo.dataset import CHOSEN, REJECTED
from jalm.sft.dataset import IGNORE


def sequence_logps(model, input_ids, labels, position_ids, segments) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2) summed log-probabilities of each row's chosen and rejected reply, and (B, 2) their lengths."""
    logits = model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits
    token = -F.cross_entropy(
        logits.float().view(-1, logits.size(-1)), labels.clamp(min=0).view(-1), reduction="none"
    ).view(labels.shape)
    token = token.masked_fill(labels == IGNORE, 0.0)
    sides = torch.stack([segments == CHOSEN, segments == REJECTED], dim=-1)  # (B, T, 2)
    logps = (token.unsqueeze(-1) * sides).sum(dim=1)
    return logps, sides.sum(dim=1).to(logps.dtype)


def pair_losses(
    kind: str,
    beta: float,
    logps: torch.Tensor,
    lengths: torch.Tensor,
    ref: torch.Tensor | None,
    gamma: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair losses (B,) and rewards (B, 2) of one loss kind, from (B, 2) log-probabilities."""
    if kind in ("dpo", "ipo"):
        ratios = logps - ref
        h = ratios[:, 0] - ratios[:, 1]
        losses = -F.logsigmoid(beta * h) if kind == "dpo" else (h - 1 / (2 * beta)) ** 2
        return losses, beta * ratios.detach()
    mean = logps / lengths
    if kind == "simpo":
        losses = -F.logsigmoid(beta * (mean[:, 0] - mean[:, 1]) - gamma)
    elif kind == "orpo":
        log_odds = mean - torch.log1p(-torch.exp(mean).clamp(max=1 - 1e-6))
        losses = -mean[:, 0] + beta * -F.logsigmoid(log_odds[:, 0] - log_odds[:, 1])
    else:
        raise ValueError(f"unknown preference loss {kind!r}")
    return losses, beta * mean.detach()


def pair_metrics(losses, rewards, logps) -> dict[str, torch.Tensor]:
    """Sums over the pairs (divided by the pair count when logged)."""
    return {
        "loss": losses.detach().sum(),
        "reward_chosen": rewards[:, 0].sum(),
        "reward_rejected": rewards[:, 1].sum(),
        "reward_accuracy": (rewards[:, 0] > rewards[:, 1]).float().sum(),
        "margin": (rewards[:, 0] - rewards[:, 1]).sum(),
        "logp_chosen": logps[:, 0].detach().sum(),
        "logp_rejected": logps[:, 1].detach().sum(),
    }
