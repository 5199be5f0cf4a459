"""The alignment losses `ipot`, `mmd` and `contrastive` against independent numpy computations: masks, padding,
per-example values, gradients, bf16 autocast, their recipes, and one short training run each."""
import json

import numpy as np
import ot
import pytest
import torch

import mmlabel
from conftest import REPO, SHORT, TINY, run_cli
from mmlabel.recipe import load_recipe
from mmlabel.testing import check_component

NAMES = ["ipot", "mmd", "contrastive"]


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def masked_batch(seed: int, dim: int, text_lengths: list[int], image_lengths: list[int], dtype=torch.float64):
    """Random states with large garbage on the padding, and masks True on the first `length` elements of a row."""
    generator = torch.Generator().manual_seed(seed)
    tokens, patches = max(text_lengths), max(image_lengths)
    text = torch.randn(len(text_lengths), tokens, dim, generator=generator, dtype=torch.float64)
    image = torch.randn(len(text_lengths), patches, dim, generator=generator, dtype=torch.float64) + 0.5
    text_mask = torch.arange(tokens)[None] < torch.tensor(text_lengths)[:, None]
    image_mask = torch.arange(patches)[None] < torch.tensor(image_lengths)[:, None]
    text[~text_mask], image[~image_mask] = 50.0, -50.0
    return text.to(dtype), text_mask, image.to(dtype), image_mask


def rows(text, text_mask, image, image_mask):
    """Each example's real token and patch states as numpy arrays."""
    for row in range(len(text)):
        yield text[row][text_mask[row]].double().numpy(), image[row][image_mask[row]].double().numpy()


# -- ipot ----------------------------------------------------------------------------------------------------------
def reference_ipot(tokens: np.ndarray, patches: np.ndarray, beta: float, iterations: int, inner_steps: int,
                   cost: str = "cosine") -> float:
    """Algorithm 1 of Xie et al. (UAI 2019), written out in numpy. Its first marginal mu (scaling a, updated first)
    is the patches', its second nu (scaling b, initialised to uniform, updated last) the tokens', as in the authors'
    code."""
    cosine = unit(patches) @ unit(tokens).T  # (patches, tokens)
    cost_matrix = (1 - cosine) * (1.0 if cost == "cosine" else 2.0 / tokens.shape[1])
    n, m = cost_matrix.shape
    mu, nu = np.full(n, 1 / n), np.full(m, 1 / m)
    b = np.full(m, 1 / m)
    kernel = np.exp(-cost_matrix / beta)
    plan = np.ones((n, m))
    for _ in range(iterations):
        q = kernel * plan
        for _ in range(inner_steps):
            a = mu / (q @ b)
            b = nu / (q.T @ a)
        plan = np.diag(a) @ q @ np.diag(b)
    return float((cost_matrix * plan).sum())


@pytest.mark.parametrize("options", [{}, {"beta": 0.2, "iterations": 30, "inner_steps": 3},
                                     {"cost": "mse", "beta": 0.01, "iterations": 20}])
def test_ipot_equals_a_plain_numpy_ipot_on_masked_examples(options):
    batch = masked_batch(0, 16, [5, 12, 1, 9], [20, 7, 3, 1])
    distances = mmlabel.build("alignment_loss", {"name": "ipot", **options})(*batch)
    settings = {"beta": 0.5, "iterations": 50, "inner_steps": 1, "cost": "cosine", **options}
    expected = [reference_ipot(tokens, patches, **settings) for tokens, patches in rows(*batch)]
    assert distances.shape == (4,) and distances.dtype == torch.float64
    assert distances.tolist() == pytest.approx(expected, rel=1e-9)


def test_ipot_approaches_the_exact_emd_as_iterations_grow():
    batch = masked_batch(1, 8, [6, 14], [11, 4])
    exact = []
    for tokens, patches in rows(*batch):
        cost = 1 - unit(tokens) @ unit(patches).T
        exact.append(ot.emd2(np.full(len(tokens), 1 / len(tokens)), np.full(len(patches), 1 / len(patches)), cost))
    errors = []
    for iterations in (1, 10, 100, 1000):
        distances = mmlabel.build("alignment_loss", {"name": "ipot", "beta": 0.05, "iterations": iterations})(*batch)
        errors.append(max(abs(got - want) / want for got, want in zip(distances.tolist(), exact)))
    assert errors == sorted(errors, reverse=True) and errors[0] > 0.05
    assert errors[-1] < 1e-6


def test_ipot_in_float32_with_a_tiny_beta_stays_finite_and_agrees_with_float64():
    """exp(-C / beta) underflows in float32 at beta = 0.005 (down to exp(-400)); the log-domain updates do not. A small
    beta needs many iterations with one inner step: 5000 reach the exact EMD."""
    text, text_mask, image, image_mask = masked_batch(2, 8, [7], [9], dtype=torch.float32)
    exact = mmlabel.build("alignment_loss", {"name": "emd", "cost": "cosine"})(text, text_mask, image, image_mask).item()
    for iterations, tolerance in ((200, None), (5000, 1e-5)):
        loss = mmlabel.build("alignment_loss", {"name": "ipot", "beta": 0.005, "iterations": iterations})
        single = loss(text, text_mask, image, image_mask)
        double = loss(text.double(), text_mask, image.double(), image_mask)
        assert single.dtype == torch.float32 and torch.isfinite(single).all()
        assert single.item() == pytest.approx(double.item(), rel=1e-4)
        if tolerance:
            assert single.item() == pytest.approx(exact, rel=tolerance)
        else:
            assert abs(single.item() - exact) > 1e-3  # 200 iterations are not enough at this beta


def test_ipot_puts_uniform_mass_on_the_real_elements_and_none_on_padding():
    """The reference code passed the mask inverted (True on real tokens where it expected True on padding)."""
    from mmlabel.alignment.ipot import ipot_plans
    from mmlabel.alignment.sinkhorn import unit_cost

    text, text_mask, image, image_mask = masked_batch(3, 8, [3, 6], [5, 2])
    plans = ipot_plans(unit_cost(text, image, "cosine"), text_mask, image_mask, 0.5, 50)
    assert plans.sum((1, 2)).tolist() == pytest.approx([1.0, 1.0])
    assert plans[0][~text_mask[0]].abs().sum() == 0 and plans[0][:, ~image_mask[0]].abs().sum() == 0
    assert plans[0].sum(1)[:3].tolist() == pytest.approx([1 / 3] * 3)  # the token marginals are exact
    assert plans[1].sum(0)[:2].tolist() == pytest.approx([1 / 2] * 2, rel=1e-3)  # the patches' nearly


def test_ipot_gradient_is_the_plan_held_fixed_and_matches_the_exact_emds_at_convergence():
    text, text_mask, image, image_mask = masked_batch(4, 6, [4, 3], [5, 7])
    gradients = {}
    for name, options in (("ipot", {"beta": 0.05, "iterations": 2000}), ("emd", {"cost": "cosine"})):
        leaf = text.clone().requires_grad_(True)
        mmlabel.build("alignment_loss", {"name": name, **options})(leaf, text_mask, image, image_mask).sum().backward()
        gradients[name] = leaf.grad
    assert gradients["ipot"][~text_mask].abs().sum() == 0 and gradients["ipot"][text_mask].abs().sum() > 0
    assert torch.allclose(gradients["ipot"], gradients["emd"], atol=1e-6)


# -- mmd -----------------------------------------------------------------------------------------------------------
def reference_mmd(tokens: np.ndarray, patches: np.ndarray, kernel: str, blur: float) -> float:
    """Half the squared MMD between uniform measures on the unit vectors, each sum written out."""
    x, y = unit(tokens), unit(patches)

    def k(first, second):
        distance = np.sqrt(((first[:, None] - second[None]) ** 2).sum(-1))
        return np.exp(-distance ** 2 / (2 * blur ** 2)) if kernel == "gaussian" else -distance

    return float(k(x, x).mean() / 2 + k(y, y).mean() / 2 - k(x, y).mean())


@pytest.mark.parametrize("kernel, blur", [("gaussian", 0.5), ("gaussian", 1.3), ("energy", 0.5)])
def test_mmd_equals_the_kernel_formula_per_example_with_padding(kernel, blur):
    batch = masked_batch(5, 12, [5, 12, 2], [9, 3, 6])
    values = mmlabel.build("alignment_loss", {"name": "mmd", "kernel": kernel, "blur": blur})(*batch)
    expected = [reference_mmd(tokens, patches, kernel, blur) for tokens, patches in rows(*batch)]
    assert values.shape == (3,) and len(set(expected)) == 3
    # GeomLoss's energy kernel puts a point at distance 1e-4 from itself (sqrt of a 1e-8 floor), not 0.
    assert values.tolist() == pytest.approx(expected, rel=1e-9, abs=1e-4 if kernel == "energy" else 1e-12)


def test_mmd_is_zero_between_one_cloud_and_itself_and_for_an_empty_example():
    states = torch.randn(1, 6, 8, dtype=torch.float64)
    mask = torch.ones(1, 6, dtype=torch.bool)
    loss = mmlabel.build("alignment_loss", "mmd")
    assert loss(states, mask, states * 3, mask).item() == pytest.approx(0.0, abs=1e-12)  # scale: unit vectors
    assert loss(states, mask, states, torch.zeros(1, 6, dtype=torch.bool)).item() == 0.0


@pytest.mark.parametrize("kernel", ["gaussian", "energy"])
def test_mmd_gradient_matches_finite_differences(kernel):
    text, text_mask, image, image_mask = masked_batch(6, 5, [4, 3], [5, 6])
    loss = mmlabel.build("alignment_loss", {"name": "mmd", "kernel": kernel})
    torch.autograd.gradcheck(lambda t, i: loss(t, text_mask, i, image_mask),
                             (text.requires_grad_(True), image.requires_grad_(True)), eps=1e-6, atol=1e-5)


def test_mmd_energy_kernel_passes_the_conformance_kit():
    check_component("alignment_loss", "mmd", kernel="energy")


# -- contrastive ---------------------------------------------------------------------------------------------------
def reference_info_nce(texts: list[np.ndarray], images: list[np.ndarray], temperature: float) -> tuple:
    """Per post: the text -> image and image -> text InfoNCE losses of the pooled, normalised states."""
    pooled_text = unit(np.stack([states.mean(0) for states in texts]))
    pooled_image = unit(np.stack([states.mean(0) for states in images]))
    similarity = pooled_text @ pooled_image.T / temperature
    text_to_image = [np.log(np.exp(row).sum()) - row[i] for i, row in enumerate(similarity)]
    image_to_text = [np.log(np.exp(column).sum()) - column[i] for i, column in enumerate(similarity.T)]
    return np.array(text_to_image), np.array(image_to_text)


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_contrastive_equals_a_hand_computed_info_nce(temperature):
    batch = masked_batch(7, 8, [3, 7, 5, 2], [4, 4, 9, 6])
    texts, images = zip(*rows(*batch))
    text_to_image, image_to_text = reference_info_nce(texts, images, temperature)
    symmetric = mmlabel.build("alignment_loss", {"name": "contrastive", "temperature": temperature})(*batch)
    one_way = mmlabel.build("alignment_loss", {"name": "contrastive", "temperature": temperature, "symmetric": False})(*batch)
    assert symmetric.shape == (4,) and not np.allclose(text_to_image, image_to_text)
    assert symmetric.tolist() == pytest.approx(((text_to_image + image_to_text) / 2).tolist(), rel=1e-9)
    assert one_way.tolist() == pytest.approx(text_to_image.tolist(), rel=1e-9)


def test_contrastive_on_a_batch_of_one_is_log_one_and_absent_posts_are_no_negatives():
    text, text_mask, image, image_mask = masked_batch(8, 8, [3, 7, 5], [4, 4, 9])
    loss = mmlabel.build("alignment_loss", "contrastive")
    alone = loss(text[:1], text_mask[:1], image[:1], image_mask[:1])
    assert alone.tolist() == [0.0]  # one post: softmax over one candidate, -log(1)
    full = loss(text, text_mask, image, image_mask)
    without_middle_image = image_mask.clone()
    without_middle_image[1] = False
    reduced = loss(text, text_mask, image, without_middle_image)
    pair = loss(text[[0, 2]], text_mask[[0, 2]], image[[0, 2]], image_mask[[0, 2]])
    assert reduced[1] == 0 and reduced[[0, 2]].tolist() == pytest.approx(pair.tolist(), rel=1e-12)
    assert full[0].item() != pytest.approx(pair[0].item(), rel=1e-3)  # the third post is a negative when present


def test_contrastive_gradient_matches_finite_differences():
    text, text_mask, image, image_mask = masked_batch(9, 5, [4, 3, 2], [5, 6, 1])
    loss = mmlabel.build("alignment_loss", {"name": "contrastive", "temperature": 0.3})
    torch.autograd.gradcheck(lambda t, i: loss(t, text_mask, i, image_mask),
                             (text.requires_grad_(True), image.requires_grad_(True)), eps=1e-6, atol=1e-5)


# -- all three -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_padding_changes_nothing_and_backward_leaves_padding_alone(name):
    text, text_mask, image, image_mask = masked_batch(10, 16, [4, 9, 6], [7, 3, 5], dtype=torch.float32)
    loss = mmlabel.build("alignment_loss", name)
    trimmed = loss(text[:, :9], text_mask[:, :9], image[:, :7], image_mask[:, :7])
    text.requires_grad_(True)
    image.requires_grad_(True)
    padded = loss(text, text_mask, image, image_mask)
    assert padded.tolist() == pytest.approx(trimmed.tolist(), rel=1e-5) and (padded > 0).all()
    padded.sum().backward()
    assert torch.isfinite(text.grad).all() and torch.isfinite(image.grad).all()
    assert text.grad[~text_mask].abs().sum() == 0 and image.grad[~image_mask].abs().sum() == 0
    assert text.grad[text_mask].abs().sum() > 0 and image.grad[image_mask].abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_under_bf16_autocast_the_loss_is_computed_in_float32(name):
    text, text_mask, image, image_mask = masked_batch(11, 16, [4, 9], [7, 3], dtype=torch.float32)
    text, image = text.bfloat16(), image.bfloat16()
    loss = mmlabel.build("alignment_loss", name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = loss(text, text_mask, image, image_mask)
    plain = loss(text.float(), text_mask, image.float(), image_mask)
    assert autocast.dtype == torch.float32 and torch.equal(autocast, plain)


@pytest.mark.parametrize("name", NAMES)
def test_each_loss_has_a_recipe_that_is_dtca_with_that_alignment(name):
    reference = load_recipe(REPO / "recipes" / "dtca.toml").model_dump()
    variant = load_recipe(REPO / "recipes" / f"dtca-{name}.toml").model_dump()
    assert variant["alignment_loss"]["name"] == name
    assert {key: value for key, value in variant.items() if key != "alignment_loss"} == \
        {key: value for key, value in reference.items() if key != "alignment_loss"}


@pytest.mark.parametrize("name", NAMES)
def test_a_short_training_run_logs_the_alignment_term(name, small_synthetic, tmp_path):
    """...and the run reloads with that loss and predicts what it predicted when it was trained."""
    out = tmp_path / name
    result = run_cli("train", "recipes/quickstart.toml", "--out", str(out), "--set", f"data.root={small_synthetic}",
                     *SHORT, *TINY, "--set", "train.max_steps_per_epoch=3", "--set", f"alignment_loss.name={name}")
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert record["terms"]["align"] > 0 and record["weighted_terms"]["align"] == pytest.approx(
        0.6 * record["terms"]["align"], rel=1e-4)
    assert (out / "recipe.toml").read_text().count(f'name = "{name}"') == 1
    tagger = mmlabel.Tagger.load(out)
    assert type(tagger.model.alignment_loss) is type(mmlabel.build("alignment_loss", name))
    stored = [json.loads(line) for line in (out / "predictions-test.jsonl").read_text().splitlines()]
    assert len(stored) == 8 and any(record["spans"] for record in stored)  # so that the comparison can fail
    for record in stored:
        spans = tagger.predict(record["tokens"], image=small_synthetic / "images" / record["image"])
        assert [{"start": s.start, "end": s.end, "label": s.label} for s in spans] == record["spans"]
