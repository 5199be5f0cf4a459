"""InfoNCE between a post's pooled text and pooled image, against the other posts of the batch: CLIP-style alignment
(Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021; the InfoNCE
loss of van den Oord et al., "Representation Learning with Contrastive Predictive Coding", 2018).

A post's text is the mean of its real token states, its image the mean of its real patch states; both are
L2-normalised, and the similarity of text i and image j is their cosine divided by `temperature`. Post i's
text -> image loss is -log softmax_j(sim(i, j))[i] over the images of the batch, its image -> text loss the same over
the texts; `symmetric` averages the two (CLIP), else the text -> image loss alone.

A post without a real token or patch gets 0 and is no candidate for the others. Unlike the transport losses, a
post's value depends on the rest of its batch: the other posts are its negatives, so a batch of one post has nothing
to contrast and gives log(1) = 0, and two posts sharing one image are pushed apart as if they were unrelated. Under
`--nproc` the negatives are the process's own batch.
"""
import torch
import torch.nn.functional as F
from torch import nn

from mmlabel.alignment.base import check_sizes
from mmlabel.alignment.configs import ContrastiveConfig
from mmlabel.configs import Configured


class ContrastiveAlignment(Configured, nn.Module):
    """InfoNCE between each post's mean token state and mean patch state against the batch's other posts (CLIP-style)."""

    Config = ContrastiveConfig

    def __init__(self, config: ContrastiveConfig | None = None, **options):
        super().__init__(config, **options)

    def forward(
        self, text_states: torch.Tensor, text_mask: torch.Tensor, image_states: torch.Tensor, image_mask: torch.Tensor
    ) -> torch.Tensor:
        """(batch, tokens, dim), (batch, tokens) bool, (batch, patches, dim), (batch, patches) bool -> (batch,).
        A post without a real token or patch gets 0."""
        check_sizes(text_states, image_states)
        dtype = torch.float64 if text_states.dtype == torch.float64 else torch.float32
        text_mask, image_mask = text_mask.bool(), image_mask.bool()
        present = text_mask.any(1) & image_mask.any(1)  # (batch,)
        with torch.autocast(device_type=text_states.device.type, enabled=False):
            text = F.normalize(masked_mean(text_states.to(dtype), text_mask), dim=-1)  # (batch, dim)
            image = F.normalize(masked_mean(image_states.to(dtype), image_mask), dim=-1)
            # Absent posts leave the batch: they are nobody's candidates.
            text, image = text[present], image[present]
            similarity = text @ image.T / self.config.temperature  # (texts, images)
            losses = -similarity.log_softmax(1).diagonal()  # text -> image
            if self.config.symmetric:
                losses = (losses - similarity.log_softmax(0).diagonal()) / 2  # and image -> text
            return losses.new_zeros(len(present)).masked_scatter(present, losses)

def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, n, dim), (batch, n) bool -> (batch, dim): the mean of the real elements (0 where there are none)."""
    weights = mask.to(states.dtype)
    return (states * weights[:, :, None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1.0)
