"""Inexact proximal point optimal transport (IPOT) between a sentence's token states and its image's patch states:
the alignment the DTCA authors' code computes (Yu et al., AACL 2022; code windforfurture/DTCA, which takes UNITER's
`optimal_transport_dist`), after Xie et al., "A Fast Proximal Point Method for Computing Exact Wasserstein
Distance", UAI 2019 (Algorithm 1).

IPOT solves the transport problem by proximal point steps: each outer iteration solves an entropic problem whose
prior is the previous plan, T <- diag(a) (exp(-C / beta) * T) diag(b), with `inner_steps` Sinkhorn-like scaling
updates of a and b per iteration. Unlike plain Sinkhorn it converges to the exact optimal plan for any beta. The
defaults are the authors': beta 0.5, 50 iterations, 1 inner step, cosine cost 1 - cos.

Each side carries uniform mass over its real elements only. The reference code passed `attention_mask == 1` where
its function expected True on padding, so there the padding tokens carried the text's mass and the real tokens none;
here the masks are True on real elements and padding carries nothing. The scalings are updated in the log domain
(the same iteration, exactly, in exact arithmetic), so a small beta does not underflow exp(-C / beta) to 0 in float32.

The distance of an example is <T, C> with the plan T held constant, as the reference code does (`T.detach()`):
the gradient flows through the cost only, and is the plan. Differentiating through 50 iterations would cost memory
and time for a plan that is, once converged, the exact one, whose gradient with respect to the cost is the plan
itself (the envelope theorem, as for `emd`).
"""
import torch
from torch import nn

from mmlabel.alignment.base import check_sizes
from mmlabel.alignment.sinkhorn import unit_cost
from mmlabel.alignment.configs import IPOTConfig
from mmlabel.configs import Configured


class IPOTAlignment(Configured, nn.Module):
    """Inexact proximal point optimal transport (the DTCA authors' alignment), one distance <T, C> per example."""

    Config = IPOTConfig

    def __init__(self, config: IPOTConfig | None = None, **options):
        super().__init__(config, **options)

    def forward(
        self, text_states: torch.Tensor, text_mask: torch.Tensor, image_states: torch.Tensor, image_mask: torch.Tensor
    ) -> torch.Tensor:
        """(batch, tokens, dim), (batch, tokens) bool, (batch, patches, dim), (batch, patches) bool -> (batch,).
        An example without a real token or patch gets 0."""
        check_sizes(text_states, image_states)
        with torch.autocast(device_type=text_states.device.type, enabled=False):
            cost = unit_cost(text_states, image_states, self.config.cost)  # (batch, tokens, patches)
            text_mask, image_mask = text_mask.bool(), image_mask.bool()
            empty = ~text_mask.any(1) | ~image_mask.any(1)
            # An empty example is solved over all its elements, only to stay finite; its distance is discarded.
            plans = ipot_plans(cost.detach(), text_mask | empty[:, None], image_mask | empty[:, None],
                               self.config.beta, self.config.iterations, self.config.inner_steps)
            return (plans * cost).sum((1, 2)).masked_fill(empty, 0.0)


@torch.no_grad()
def ipot_plans(cost: torch.Tensor, text_mask: torch.Tensor, image_mask: torch.Tensor, beta: float,
               iterations: int, inner_steps: int = 1) -> torch.Tensor:
    """(batch, tokens, patches) IPOT plans between uniform masses on the real tokens and the real patches (each
    example needs at least one of each), zero on padding. The order of the updates is the authors' code's: the
    patch scaling first, then the token scaling, so the token marginals are exact after every iteration."""
    joint = text_mask[:, :, None] & image_mask[:, None, :]
    log_kernel = (-cost / beta).masked_fill(~joint, -torch.inf)  # log exp(-C / beta)
    log_text_mass = _log_uniform(text_mask, cost.dtype)  # (batch, tokens)
    log_image_mass = _log_uniform(image_mask, cost.dtype)  # (batch, patches)
    log_plan = torch.zeros_like(cost).masked_fill(~joint, -torch.inf)  # T = 1 1^T on the real pairs
    log_token_scale = log_text_mass.clone()
    for _ in range(iterations):
        log_prior = log_kernel + log_plan  # log Q, Q = exp(-C / beta) * T
        for _ in range(inner_steps):
            # Padding rows and columns give -inf - -inf = nan here; they are set back to -inf (no mass).
            log_patch_scale = (log_image_mass - torch.logsumexp(log_prior + log_token_scale[:, :, None], 1)
                               ).masked_fill(~image_mask, -torch.inf)
            log_token_scale = (log_text_mass - torch.logsumexp(log_prior + log_patch_scale[:, None, :], 2)
                               ).masked_fill(~text_mask, -torch.inf)
        log_plan = log_token_scale[:, :, None] + log_prior + log_patch_scale[:, None, :]
    return log_plan.exp()


def _log_uniform(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, n) log of uniform weights over the real elements, -inf on padding."""
    counts = mask.sum(1, keepdim=True).clamp_min(1).to(dtype)
    return (-counts.log()).expand(mask.shape).masked_fill(~mask, -torch.inf)
