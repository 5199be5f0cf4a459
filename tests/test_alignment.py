"""Token-patch alignment losses: `emd` against the exact linear programme, masks, padding, `sinkhorn`, `none`."""
import numpy as np
import ot
import pytest
import torch
import torch.nn.functional as F

import mmlabel


def exact_emd(text: torch.Tensor, image: torch.Tensor, cost: str = "mse") -> float:
    """Exact EMD (POT's network simplex) between uniform measures; cost = MSE of the L2-normalised vectors (Eq. 15),
    or 1 - their cosine similarity (the authors' code)."""
    if cost == "cosine":
        cost = (1 - F.cosine_similarity(text.double()[:, None], image.double()[None], dim=-1)).numpy()
    else:
        text, image = F.normalize(text.double(), dim=-1), F.normalize(image.double(), dim=-1)
        cost = ((text[:, None] - image[None]) ** 2).mean(-1).numpy()
    return ot.emd2(np.full(len(text), 1 / len(text)), np.full(len(image), 1 / len(image)), cost)


def clustered(generator, n: int, dim: int, centres: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Points around a few shared centres, so that transport costs vary (uniform noise in high dimension would make
    every pair equally far apart and the test too easy)."""
    picks = torch.randint(0, len(centres), (n,), generator=generator)
    return centres[picks] + 0.3 * torch.randn(n, dim, generator=generator) + shift


def random_batch(generator, dim: int, text_lengths: list[int], image_lengths: list[int], dtype=torch.float32,
                 cost: str = "mse"):
    """Clustered token and patch states of several lengths, garbage on the padding; the exact distances by ot.emd2."""
    tokens, patches = max(text_lengths), max(image_lengths)
    text = torch.randn(len(text_lengths), tokens, dim, generator=generator, dtype=torch.float64) * 5
    image = torch.randn(len(text_lengths), patches, dim, generator=generator, dtype=torch.float64) * 5
    expected = []
    for row, (n, m) in enumerate(zip(text_lengths, image_lengths)):
        centres = torch.randn(3, dim, generator=generator, dtype=torch.float64)
        text[row, :n] = clustered(generator, n, dim, centres, 0)
        image[row, :m] = clustered(generator, m, dim, centres, 0.2 * torch.randn(dim, generator=generator, dtype=torch.float64))
        expected.append(exact_emd(text[row, :n], image[row, :m], cost) if n and m else 0.0)
    text_mask = torch.arange(tokens)[None] < torch.tensor(text_lengths)[:, None]
    image_mask = torch.arange(patches)[None] < torch.tensor(image_lengths)[:, None]
    return text.to(dtype), text_mask, image.to(dtype), image_mask, expected


@pytest.mark.parametrize("dim", [2, 8, 128, 768])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cost", ["mse", "cosine"])
def test_exact_emd_equals_pots_exact_solver(dim, threads, cost):
    generator = torch.Generator().manual_seed(dim)
    loss = mmlabel.build("alignment_loss", {"name": "emd", "threads": threads, "cost": cost})
    text, text_mask, image, image_mask, expected = random_batch(generator, dim, [3, 17, 40, 9, 1], [25, 6, 50, 12, 1],
                                                                dtype=torch.float64, cost=cost)
    distances = loss(text, text_mask, image, image_mask)
    assert distances.shape == (5,) and distances.dtype == torch.float64
    assert distances.tolist() == pytest.approx(expected, abs=1e-6, rel=1e-6)


def test_exact_emd_in_float32_agrees_to_float32_precision():
    generator = torch.Generator().manual_seed(0)
    text, text_mask, image, image_mask, expected = random_batch(generator, 64, [5, 30], [49, 197])
    distances = mmlabel.build("alignment_loss", "emd")(text, text_mask, image, image_mask)
    assert distances.dtype == torch.float32
    assert distances.tolist() == pytest.approx(expected, rel=1e-5)


def test_exact_emd_gradient_matches_finite_differences():
    """The envelope theorem's gradient (through the cost, with the plan fixed) is the derivative of the distance."""
    generator = torch.Generator().manual_seed(5)
    text, text_mask, image, image_mask, _ = random_batch(generator, 6, [4, 3], [5, 7], dtype=torch.float64)
    loss = mmlabel.build("alignment_loss", "emd")
    text.requires_grad_(True)
    image.requires_grad_(True)
    torch.autograd.gradcheck(lambda t, i: loss(t, text_mask, i, image_mask), (text, image), eps=1e-6, atol=1e-5)


def test_exact_emd_puts_no_mass_on_padding_and_gives_empty_examples_zero():
    from mmlabel.alignment.emd import optimal_plans, unit_cost

    generator = torch.Generator().manual_seed(9)
    text, text_mask, image, image_mask, _ = random_batch(generator, 16, [4, 0, 6], [7, 5, 0])
    plans = optimal_plans(unit_cost(text, image), text_mask, image_mask)
    assert plans[0].sum().item() == pytest.approx(1.0)
    assert plans[0][~text_mask[0]].abs().sum() == 0 and plans[0][:, ~image_mask[0]].abs().sum() == 0
    assert plans[0].sum(1)[:4].tolist() == pytest.approx([1 / 4] * 4)  # uniform mass on the real tokens
    assert plans[1].abs().sum() == 0 and plans[2].abs().sum() == 0
    text.requires_grad_(True)
    distances = mmlabel.build("alignment_loss", "emd")(text, text_mask, image, image_mask)
    assert distances[1] == 0 and distances[2] == 0 and distances[0] > 0
    distances.sum().backward()
    assert text.grad[1:].abs().sum() == 0 and text.grad[0, 4:].abs().sum() == 0 and text.grad[0, :4].abs().sum() > 0


@pytest.mark.parametrize("dim, cost", [(2, "mse"), (3, "mse"), (8, "mse"), (32, "mse"), (128, "mse"), (8, "cosine"),
                                       (128, "cosine")])
def test_the_sinkhorn_solver_of_emd_is_within_two_percent_of_the_exact_lp(dim, cost):
    generator = torch.Generator().manual_seed(dim)
    loss = mmlabel.build("alignment_loss", {"name": "emd", "solver": "sinkhorn", "cost": cost})
    text_lengths, image_lengths = [3, 17, 40, 9], [25, 6, 50, 12]
    tokens, patches = max(text_lengths), max(image_lengths)
    text = torch.randn(4, tokens, dim, generator=generator) * 5  # padding holds garbage: it must carry no mass
    image = torch.randn(4, patches, dim, generator=generator) * 5
    expected = []
    for row, (n, m) in enumerate(zip(text_lengths, image_lengths)):
        centres = torch.randn(3, dim, generator=generator)
        text[row, :n] = clustered(generator, n, dim, centres, 0)
        image[row, :m] = clustered(generator, m, dim, centres, 0.2 * torch.randn(dim, generator=generator))
        expected.append(exact_emd(text[row, :n], image[row, :m], cost))
    text_mask = torch.arange(tokens)[None] < torch.tensor(text_lengths)[:, None]
    image_mask = torch.arange(patches)[None] < torch.tensor(image_lengths)[:, None]
    distances = loss(text, text_mask, image, image_mask)
    assert distances.shape == (4,)
    for got, want in zip(distances.tolist(), expected):
        assert got == pytest.approx(want, rel=0.02)


@pytest.mark.parametrize("name", ["emd", "sinkhorn"])
def test_padding_changes_nothing(name):
    """A sentence alone and in a padded batch get the same distance; the reference code inverted this mask."""
    loss = mmlabel.build("alignment_loss", name)
    generator = torch.Generator().manual_seed(1)
    text, image = torch.randn(1, 7, 16, generator=generator), torch.randn(1, 10, 16, generator=generator)
    alone = loss(text, torch.ones(1, 7, dtype=torch.bool), image, torch.ones(1, 10, dtype=torch.bool))
    padded_text = torch.cat([text, torch.randn(1, 5, 16, generator=generator)], 1).repeat(2, 1, 1)
    padded_image = torch.cat([image, torch.randn(1, 3, 16, generator=generator)], 1).repeat(2, 1, 1)
    text_mask = torch.tensor([[True] * 7 + [False] * 5, [True] * 12])
    image_mask = torch.tensor([[True] * 10 + [False] * 3, [True] * 13])
    batched = loss(padded_text, text_mask, padded_image, image_mask)
    assert batched[0].item() == pytest.approx(alone.item(), rel=1e-4, abs=1e-7)
    assert batched[1].item() != pytest.approx(alone.item(), rel=1e-3)  # the same padding as real elements counts


def test_gradients_flow_and_empty_examples_are_zero():
    loss = mmlabel.build("alignment_loss", "emd")
    text = torch.randn(2, 4, 8, requires_grad=True)
    image = torch.randn(2, 5, 8, requires_grad=True)
    image_mask = torch.tensor([[True] * 5, [False] * 5])
    distances = loss(text, torch.ones(2, 4, dtype=torch.bool), image, image_mask)
    assert distances[1] == 0 and distances[0] > 0
    distances.sum().backward()
    assert text.grad[0].abs().sum() > 0 and image.grad[0].abs().sum() > 0
    assert torch.isfinite(text.grad).all() and torch.isfinite(image.grad).all()


def test_sinkhorn_is_configurable_and_none_is_zero():
    generator = torch.Generator().manual_seed(2)
    text, image = torch.randn(2, 6, 8, generator=generator), torch.randn(2, 9, 8, generator=generator)
    text_mask, image_mask = torch.ones(2, 6, dtype=torch.bool), torch.ones(2, 9, dtype=torch.bool)
    emd = mmlabel.build("alignment_loss", "emd")(text, text_mask, image, image_mask)
    sharp = mmlabel.build("alignment_loss", {"name": "sinkhorn", "blur": 0.01, "scaling": 0.99})(text, text_mask, image, image_mask)
    blurred = mmlabel.build("alignment_loss", {"name": "sinkhorn", "blur": 1.0, "debias": False})(text, text_mask, image, image_mask)
    assert torch.allclose(sharp, emd, rtol=0.03)
    assert not torch.allclose(blurred, emd, rtol=0.1)
    none = mmlabel.build("alignment_loss", "none")(text, text_mask, image, image_mask)
    assert none.shape == (2,) and not none.any()


def test_cost_is_the_mse_of_normalised_vectors():
    """One token and one patch: the distance is exactly their cost, and scaling a vector changes nothing."""
    loss = mmlabel.build("alignment_loss", "emd")
    text, image = torch.tensor([[[3.0, 0.0, 0.0, 0.0]]]), torch.tensor([[[0.0, 0.5, 0.0, 0.0]]])
    one = torch.ones(1, 1, dtype=torch.bool)
    assert loss(text, one, image, one).item() == pytest.approx(2 / 4, rel=1e-3)  # |e1 - e2|^2 / dim


def test_states_of_different_sizes_are_refused():
    loss = mmlabel.build("alignment_loss", "emd")
    with pytest.raises(ValueError, match="one size"):
        loss(torch.randn(1, 2, 8), torch.ones(1, 2, dtype=torch.bool), torch.randn(1, 3, 4), torch.ones(1, 3, dtype=torch.bool))


@pytest.mark.parametrize("name, options", [("emd", {}), ("emd", {"solver": "sinkhorn"}), ("sinkhorn", {})])
def test_the_cosine_cost_is_dim_over_two_times_the_mse_cost(name, options):
    """One token and one patch at a right angle: cosine = 1 - cos = 1, mse = |e1 - e2|^2 / dim = 2 / dim; any batch:
    the same plan, so the distances differ by exactly dim / 2 (384 at the paper's dim = 768)."""
    one = torch.ones(1, 1, dtype=torch.bool)
    text, image = torch.tensor([[[3.0, 0.0, 0.0, 0.0]]]), torch.tensor([[[0.0, 0.5, 0.0, 0.0]]])
    assert mmlabel.build("alignment_loss", {"name": name, "cost": "cosine", **options})(text, one, image, one).item() == \
        pytest.approx(1.0, rel=1e-3)
    generator = torch.Generator().manual_seed(4)
    text, text_mask, image, image_mask, _ = random_batch(generator, 768, [5, 12], [17, 9])
    mse = mmlabel.build("alignment_loss", {"name": name, "cost": "mse", **options})(text, text_mask, image, image_mask)
    cosine = mmlabel.build("alignment_loss", {"name": name, "cost": "cosine", **options})(text, text_mask, image, image_mask)
    assert (cosine / mse).tolist() == pytest.approx([384.0, 384.0], rel=1e-4)


def test_the_sinkhorn_component_with_the_cosine_cost_is_close_to_the_exact_lp():
    generator = torch.Generator().manual_seed(11)
    text, text_mask, image, image_mask, expected = random_batch(generator, 32, [6, 14], [20, 8], cost="cosine")
    loss = mmlabel.build("alignment_loss", {"name": "sinkhorn", "cost": "cosine", "blur": 0.01, "scaling": 0.99})
    assert loss(text, text_mask, image, image_mask).tolist() == pytest.approx(expected, rel=0.03)
