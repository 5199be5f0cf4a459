"""Word-to-patch attention as heat maps over a photo: the image encoder's tokens placed on their grid, an aspect's
words averaged, the result quantised to one hexadecimal digit per cell (16 levels: the page draws them as
semi-transparent squares over the thumbnail, and a 14 x 14 ViT grid costs 196 characters)."""
import math

import torch

from mmlabel.data.example import Span

LEVELS = 15  # the darkest cell: hexadecimal "f"
MAX_PREFIX_TOKENS = 8  # class, distillation and register tokens a ViT may put before its patches


def patch_grid(image_encoder, n_tokens: int) -> tuple[int, int, int] | None:
    """(prefix, rows, columns): how the encoder's `n_tokens` output tokens lie on the image. The first `prefix`
    tokens (a ViT's class token, DeiT's distillation token, registers) are not on the grid; the others are its cells,
    row by row. Taken from a timm ViT's `patch_embed.grid_size` where there is one, else the fewest leading tokens
    whose removal leaves a grid with the aspect ratio of the encoder's `input_size`; None when nothing fits."""
    grid = getattr(getattr(getattr(image_encoder, "model", None), "patch_embed", None), "grid_size", None)
    if grid is not None and 0 <= n_tokens - grid[0] * grid[1] <= MAX_PREFIX_TOKENS:
        return n_tokens - grid[0] * grid[1], int(grid[0]), int(grid[1])
    _, height, width = getattr(image_encoder, "input_size", (3, 1, 1))
    for prefix in range(min(MAX_PREFIX_TOKENS, n_tokens - 1) + 1):
        cells = n_tokens - prefix
        rows = math.sqrt(cells * height / width)
        if abs(rows - round(rows)) < 1e-6 and round(rows) and cells % round(rows) == 0:
            return prefix, round(rows), cells // round(rows)
    return None


def span_heat(attention: torch.Tensor, span: Span, grid: tuple[int, int, int]) -> str:
    """The attention (words, tokens) of the span's words, averaged, over the grid's cells, scaled so that the
    strongest cell is `LEVELS`, one hexadecimal digit per cell row by row; "" where the span's words have no
    attention (cut off by max_tokens)."""
    prefix, rows, columns = grid
    cells = attention[span.start:span.end, prefix:prefix + rows * columns].float().mean(0)
    strongest = float(cells.max()) if cells.numel() else 0.0
    if not strongest > 0:
        return ""
    levels = torch.round(cells / strongest * LEVELS).to(torch.int64).tolist()
    return "".join(format(level, "x") for level in levels)
