"""The probe: before the first training step, every component of a model runs once on a real batch and each
return value is checked against its contract (`mmlabel.contracts`), so that a wrong shape, dtype or a non-finite
value fails with one line naming the component, before any training."""
from mmlabel.contracts import declares, describe, show


class ProbeError(Exception):
    """A component returned the wrong thing on the probe batch (turned into a `ComponentError` naming it)."""


def check_model_outputs(model, batch: dict) -> None:
    """Run `model`'s components once on `batch` (a collated training batch) without gradients and check each
    return value's type, shape, dtype and finiteness; raise a `ComponentError` naming the component that is wrong.
    Called by the trainer before the first step, so a wrong shape fails before any training."""
    import torch

    from mmlabel.errors import ComponentError

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _probe(model, batch)
    except ProbeError as error:
        raise ComponentError(str(error)) from None
    finally:
        model.train(was_training)


def _probe(model, batch: dict) -> None:
    rows, words = batch["word_mask"].shape
    text_encoder, head = model.text_encoder, model.fusion_head
    if declares(head, "needs_prefix"):  # early fusion: the image goes into the text encoder
        image_states, image_mask = _probe_images(model, batch, rows)
        text_states = _probe_text(text_encoder, batch, rows, model.text_prefix(image_states, image_mask))
    else:
        text_states = _probe_text(text_encoder, batch, rows, {})
        image_states, image_mask = _probe_images(model, batch, rows)
    emissions = head(text_states, batch["first_subword_index"], image_states, image_mask)
    _expect_states(emissions, "fusion_head", head, "emissions", (rows, words, head.num_tags),
                   "(batch, words, num_tags)")
    word_mask = batch["word_mask"].bool()
    _expect_per_example(head.loss(emissions, batch["tags"], word_mask), "fusion_head", head, "`loss`", rows)
    decoded = head.decode(emissions, word_mask)
    lengths = word_mask.sum(1).tolist()
    if not isinstance(decoded, list) or [len(path) for path in decoded] != lengths:
        got = [len(path) for path in decoded] if isinstance(decoded, list) else show(decoded)
        raise ProbeError(f"{describe('fusion_head', head)}: `decode` returned paths of lengths {got}, not one tag "
                         f"per real word {lengths}")
    if image_states is not None and model.alignment_loss is not None:
        distance = model.alignment_loss(text_states, batch["attention_mask"].bool(),
                                        model.image_projection(image_states), image_mask)
        _expect_per_example(distance, "alignment_loss", model.alignment_loss, "the loss", rows)


def _probe_text(text_encoder, batch: dict, rows: int, prefix: dict):
    text_states = text_encoder(batch["input_ids"], batch["attention_mask"], **prefix)
    _expect_states(text_states, "text_encoder", text_encoder, "text states",
                   (rows, batch["input_ids"].shape[1], text_encoder.hidden_size), "(batch, tokens, hidden_size)")
    return text_states


def _probe_images(model, batch: dict, rows: int):
    if "image_states" in batch:
        return batch["image_states"], batch["image_mask"]
    if model.image_encoder is not None:
        return _probe_image(model.image_encoder, batch["pixel_values"], rows)
    return None, None


def _probe_image(encoder, pixel_values, rows: int):
    output = encoder(pixel_values)
    if not isinstance(output, tuple) or len(output) != 2:
        raise ProbeError(f"{describe('image_encoder', encoder)}: `forward` returned {show(output)}, not a tuple "
                         f"(states, mask)")
    states, mask = output
    _expect_states(states, "image_encoder", encoder, "states", (rows, _dim(states, 1), encoder.hidden_size),
                   "(batch, patches, hidden_size)")
    expected = (rows, states.shape[1])
    if getattr(mask, "shape", None) != expected or str(getattr(mask, "dtype", "")) != "torch.bool":
        raise ProbeError(f"{describe('image_encoder', encoder)}: the mask is {show(mask)}; the contract is a bool "
                         f"tensor (batch, patches) = {expected}")
    return states, mask


def _expect_states(value, kind: str, component, what: str, expected: tuple, contract: str) -> None:
    if getattr(value, "shape", None) != expected or not getattr(value, "is_floating_point", lambda: False)():
        raise ProbeError(f"{describe(kind, component)}: {what} on the first batch are {show(value)}; the contract is "
                         f"a floating-point tensor {contract} = {expected}")


def _expect_per_example(value, kind: str, component, what: str, rows: int) -> None:
    import torch

    if getattr(value, "shape", None) != (rows,):
        raise ProbeError(f"{describe(kind, component)}: {what} on the first batch is {show(value)}; the contract "
                         f"is one value per example, (batch,) = ({rows},)")
    if not bool(torch.isfinite(value.float()).all()):
        raise ProbeError(f"{describe(kind, component)}: {what} on the first batch is not finite: {value.tolist()}")


def _dim(value, index: int):
    shape = getattr(value, "shape", ())
    return shape[index] if len(shape) > index else None

