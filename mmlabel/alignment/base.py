"""What every alignment loss checks: token and patch states of one size."""
import torch


def check_sizes(text_states: torch.Tensor, image_states: torch.Tensor) -> None:
    """Token and patch states must live in one space (the model projects the image states to the text size)."""
    if text_states.shape[-1] != image_states.shape[-1]:
        raise ValueError(f"alignment needs states of one size: text {text_states.shape[-1]}, image {image_states.shape[-1]}")
