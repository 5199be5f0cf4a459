"""The `text`, `concat`, `gated` and `prefix` fusion heads: the conformance kit, shapes and masks, what each head
does with the image, the text encoder's prefix capability on every `hf` family, and a short trained run of each that
`Tagger.load` reloads and that predicts as the run did."""
import json

import pytest
import torch

from conftest import REPO
from mmlabel.errors import ComponentError, MMLabelError
from mmlabel import registry
from mmlabel.registry import components, get
from mmlabel.testing import check_component
from model_helpers import (SENTENCES, TEXT_FAMILIES, make_batch, tiny_image_options, tiny_text_options,  # noqa: F401
                           tokenizer_dirs)

HEADS = ("text", "concat", "gated", "prefix")


def build(name, text_dim=16, image_dim=12, num_tags=5, **options):
    torch.manual_seed(0)
    return registry.build("fusion_head", {"name": name, **options}, text_dim=text_dim, image_dim=image_dim, num_tags=num_tags).eval()


def inputs(rows=2, tokens=7, words=4, patches=5, text_dim=16, image_dim=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    text = torch.randn(rows, tokens, text_dim, generator=generator)
    index = torch.arange(1, words + 1).repeat(rows, 1)
    image = torch.randn(rows, patches, image_dim, generator=generator)
    return text, index, image, torch.ones(rows, patches, dtype=torch.bool)


@pytest.mark.parametrize("name", HEADS)
def test_each_head_passes_the_conformance_kit_and_is_listed_in_one_line(name):
    check_component("fusion_head", name)
    component = next(c for c in components("fusion_head") if c.name == name)
    assert component.description and "\n" not in component.description


@pytest.mark.parametrize("name", HEADS)
def test_each_head_builds_from_keyword_options_without_the_registry(name):
    """`Head(text_dim=..., num_tags=..., dropout=...)`: the class makes its own Config from the options, as the
    registry's build does, and refuses an unknown option."""
    factory = get("fusion_head", name).factory
    head = factory(text_dim=16, image_dim=12, num_tags=5, dropout=0.3, constrained=False)
    assert isinstance(head.config, factory.Config) and head.config.dropout == 0.3 and not head.config.constrained
    assert head.dropout.p == 0.3 and head(*inputs()).shape == (2, 4, 5)
    with pytest.raises(ValueError, match="dropuot"):
        factory(text_dim=16, image_dim=12, num_tags=5, dropuot=0.3)


@pytest.mark.parametrize("name", HEADS)
def test_padding_words_and_patches_do_not_change_the_real_words_emissions(name):
    head = build(name)
    text, index, image, mask = inputs()
    emissions = head(text, index, image, mask)
    assert emissions.shape == (2, 4, 5) and torch.isfinite(emissions).all()
    padded_index = torch.cat([index, torch.zeros(2, 3, dtype=torch.long)], 1)  # three padding words -> token 0
    padded_image = torch.cat([image, torch.full((2, 3, 12), 50.0)], 1)  # three padding patches
    padded_mask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], 1)
    padded = head(text, padded_index, padded_image, padded_mask)
    assert padded.shape == (2, 7, 5)
    assert torch.allclose(padded[:, :4], emissions, atol=1e-5)


@pytest.mark.parametrize("name", ["concat", "gated"])
def test_late_fusion_heads_use_the_image_and_work_without_one(name):
    head = build(name)
    text, index, image, mask = inputs()
    with_image = head(text, index, image, mask)
    assert not torch.allclose(with_image, head(text, index, image.flip(0), mask))  # the other post's image
    text_only = build(name, image_dim=None)
    assert text_only(text, index).shape == (2, 4, 5)
    with pytest.raises(ValueError, match="built without an image encoder"):
        text_only(text, index, image, mask)


def test_the_text_head_ignores_the_image():
    head = build("text")
    text, index, image, mask = inputs()
    assert torch.equal(head(text, index, image, mask), head(text, index))
    assert build("text", image_dim=None)(text, index).shape == (2, 4, 5)


def test_concat_pools_the_first_state_or_the_mean_of_real_patches():
    head = build("concat", pool="mean")
    image = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    assert torch.allclose(head.pooled(image, mask), torch.stack([image[0].mean(0), image[1, :2].mean(0)]))
    assert torch.equal(head.pooled(image, torch.zeros(2, 4, dtype=torch.bool)), torch.zeros(2, 3))
    assert torch.equal(build("concat", pool="cls").pooled(image, mask), image[:, 0])
    with pytest.raises(ComponentError, match="fusion_head.pool"):
        get("fusion_head", "concat").validate({"pool": "max"}, where="fusion_head")


def test_gated_gate_values_are_per_word_in_zero_one_and_zero_without_an_image():
    head = build("gated", heads=2)
    text, index, image, mask = inputs()
    gate = head.gate_values(text, index, image, mask)
    assert gate.shape == (2, 4, 16) and bool(((gate > 0) & (gate < 1)).all())
    no_patch = head.gate_values(text, index, image, torch.zeros_like(mask))
    assert torch.equal(no_patch, torch.zeros_like(gate))
    # With the gate shut, the emissions are those of the words alone.
    with torch.no_grad():
        head.gate.bias.fill_(-1e4)
    assert torch.allclose(head(text, index, image, mask), head(text, index, image.flip(0), mask), atol=1e-5)
    with pytest.raises(ComponentError, match="not divisible by 3 heads"):
        build("gated", heads=3)


def test_the_prefix_head_maps_real_patches_to_text_sized_prefixes():
    head = build("prefix")
    _, _, image, mask = inputs()
    mask[1, 3:] = False
    states, prefix_mask = head.prefix(image, mask)
    assert head.needs_prefix and states.shape == (2, 5, 16) and torch.equal(prefix_mask, mask)
    assert not build("prefix", image_dim=None).needs_prefix


# -- the text encoder's prefix capability -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def family_encoders(tokenizer_dirs):  # noqa: F811
    from mmlabel.text_encoders.hf import HFTextEncoder

    built = {}
    for family in TEXT_FAMILIES:
        for kernel in ("sdpa", "eager"):
            torch.manual_seed(0)
            encoder = HFTextEncoder(**tiny_text_options(family, tokenizer_dirs[family]), attn_implementation=kernel)
            built[family, kernel] = encoder.eval()
    return built


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_hf_prefixes_condition_every_token_and_honour_the_prefix_mask(family, family_encoders):
    built = family_encoders
    results = {}
    for kernel in ("sdpa", "eager"):
        encoder = built[family, kernel]
        batch = encoder.tokenize([s.split() for s in SENTENCES[:2]], max_tokens=40)
        ids, attention = batch["input_ids"], batch["attention_mask"]
        real = attention.bool()
        generator = torch.Generator().manual_seed(1)
        prefix = torch.randn(2, 3, encoder.hidden_size, generator=generator)
        prefix_mask = torch.tensor([[True, True, True], [True, True, False]])
        with torch.no_grad():
            plain = encoder(ids, attention)
            prefixed = encoder(ids, attention, prefix_states=prefix, prefix_mask=prefix_mask)
            changed = prefix.clone()
            changed[1, 2] = 100.0  # a padding prefix state
            padded = encoder(ids, attention, prefix_states=changed, prefix_mask=prefix_mask)
            shut = encoder(ids, attention, prefix_states=prefix, prefix_mask=torch.zeros(2, 3, dtype=torch.bool))
        assert prefixed.shape == plain.shape
        assert ((prefixed - plain)[real].abs().amax(-1) > 1e-3).all()  # every real token sees the image
        assert torch.allclose(padded[real], prefixed[real], atol=1e-5)
        assert torch.allclose(shut[real], plain[real], atol=1e-5)
        assert encoder.model.config._attn_implementation == kernel  # restored after the pass
        results[kernel] = prefixed[real]
    assert torch.allclose(results["sdpa"], results["eager"], atol=1e-4)  # two kernels, two mask forms, one result


def test_a_batch_without_padding_takes_prefixes_too(family_encoders):
    built = family_encoders
    encoder = built["roberta", "sdpa"]
    batch = encoder.tokenize([SENTENCES[0].split()], max_tokens=40)
    prefix = torch.randn(1, 2, encoder.hidden_size)
    with torch.no_grad():
        plain = encoder(batch["input_ids"], batch["attention_mask"])
        prefixed = encoder(batch["input_ids"], batch["attention_mask"], prefix_states=prefix)
    assert not torch.allclose(plain, prefixed)
    with pytest.raises(ValueError, match="hidden size 32"):
        encoder(batch["input_ids"], batch["attention_mask"], prefix_states=torch.randn(1, 2, 8))


def test_threads_sharing_one_encoder_get_the_prefixed_and_plain_results_of_a_lone_call(family_encoders):
    """Prefixed and plain forward passes on one model from four threads at once, overlapping: each gives what it
    gives alone, and the model's attention setting is restored once the last prefixed pass ends."""
    import threading

    encoder = family_encoders["bert", "sdpa"]
    batch = encoder.tokenize([s.split() for s in SENTENCES[:2]], max_tokens=40)
    ids, attention = batch["input_ids"], batch["attention_mask"]
    prefixes = [torch.randn(2, 3, encoder.hidden_size, generator=torch.Generator().manual_seed(n)) for n in range(3)]
    calls = [{}] + [{"prefix_states": prefix} for prefix in prefixes]  # one plain, three prefixed
    with torch.no_grad():
        alone = [encoder(ids, attention, **call) for call in calls]
    start, found, errors = threading.Barrier(len(calls)), [[] for _ in calls], []

    def work(slot: int) -> None:
        try:
            start.wait()
            with torch.no_grad():
                for _ in range(30):
                    found[slot].append(encoder(ids, attention, **calls[slot]))
        except Exception as error:  # noqa: BLE001 - reported below, with the others
            errors.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for slot, results in enumerate(found):
        assert all(torch.allclose(result, alone[slot], atol=1e-5) for result in results), f"call {slot}"
    assert encoder.model.config._attn_implementation == "sdpa"


def test_a_kernel_without_prefix_support_is_one_line(family_encoders):
    from mmlabel.text_encoders.prefix import prefixed

    built = family_encoders
    model = built["bert", "sdpa"].model
    model.config._attn_implementation = "flex_attention"
    try:
        with pytest.raises(ComponentError, match=r"^text_encoder.attn_implementation: image prefixes need 'sdpa' or "
                                                 r"'eager' attention, not 'flex_attention'$"):
            with prefixed(model, torch.zeros(1, 1, 32), torch.ones(1, 1, dtype=torch.bool)):
                pass
    finally:
        model.config._attn_implementation = "sdpa"


# -- in the model ----------------------------------------------------------------------------------------------
class WordCounter(torch.nn.Module):
    """A text encoder without the prefix capability."""

    hidden_size = 16

    def forward(self, input_ids, attention_mask):
        return torch.zeros(*input_ids.shape, self.hidden_size)


def test_the_model_routes_the_image_into_the_text_encoder_for_the_prefix_head(tokenizer_dirs):  # noqa: F811
    from mmlabel.model import TaggingModel

    text = registry.build("text_encoder", {"name": "hf", **tiny_text_options("albert", tokenizer_dirs["albert"])})
    image = registry.build("image_encoder", {"name": "timm", **tiny_image_options("vit")})
    head = registry.build("fusion_head", "prefix", text_dim=text.hidden_size, image_dim=image.hidden_size, num_tags=3)
    model = TaggingModel(text, head, image_encoder=image).eval()
    batch = make_batch(text, [s.split() for s in SENTENCES[:2]], image_encoder=image)
    other = dict(batch, pixel_values=batch["pixel_values"].flip(0))
    with torch.no_grad():
        text_states, _, _, emissions = model._encode(batch)
        assert not torch.allclose(model._encode(other)[0], text_states)  # the image reached the text states
    assert model(batch).loss.isfinite()
    with pytest.raises(ComponentError) as raised:
        TaggingModel(WordCounter(), registry.build("fusion_head", "prefix", text_dim=16, image_dim=8, num_tags=3))
    message = str(raised.value)
    assert isinstance(raised.value, MMLabelError) and "\n" not in message
    assert message.startswith("fusion_head 'prefix' (plugin mmlabel.fusion") and "use text_encoder 'hf'" in message
    TaggingModel(WordCounter(), registry.build("fusion_head", "prefix", text_dim=16, num_tags=3))  # no image: fine


def test_a_short_run_of_each_head_reloads_and_predicts_as_it_did(synthetic, tmp_path):
    from mmlabel.recipe import load_recipe
    from mmlabel.tagger import Tagger
    from mmlabel.training.runner import train_once

    for name in HEADS:
        image = ["image_encoder=none"] if name == "text" else []
        recipe = load_recipe(REPO / "recipes" / "quickstart.toml", [
            f"data.root={synthetic}", f"fusion_head.name={name}", *image, "train.epochs=2", "train.batch_size=4",
            "train.max_steps_per_epoch=12", "train.lr=3e-3"])
        train_once(recipe, tmp_path / name)
        stored = [json.loads(line) for line in (tmp_path / name / "predictions-test.jsonl").read_text().splitlines()]
        assert sum(len(record["spans"]) for record in stored) > 0, name  # so that comparing predictions can fail
        tagger = Tagger.load(tmp_path / name, device="cpu")
        assert tagger.multimodal == (name != "text")
        for record in stored:
            picture = synthetic / "images" / record["image"] if tagger.multimodal else None
            spans = tagger.predict(record["tokens"], image=picture)
            assert [{"start": s.start, "end": s.end, "label": s.label} for s in spans] == record["spans"], name


@pytest.mark.parametrize("name", HEADS)
def test_each_heads_recipe_is_the_reference_recipe_with_that_head(name):
    from mmlabel.recipe import load_recipe

    recipe = load_recipe(REPO / "recipes" / f"fusion-{name}.toml")
    reference = load_recipe(REPO / "recipes" / "dtca.toml")
    assert recipe.fusion_head.name == name
    different = {"fusion_head"} | ({"image_encoder", "alignment_loss", "data"} if name == "text" else set())
    assert recipe.model_dump(exclude=different) == reference.model_dump(exclude=different)
    if name == "text":
        assert recipe.image_encoder is None
        assert recipe.data.model_dump(exclude={"images", "missing_image"}) == reference.data.model_dump(
            exclude={"images", "missing_image"})
