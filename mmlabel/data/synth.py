"""A small synthetic MABSA dataset in `jml` format with 64x64 PNG images, built so that the image matters.

Each sentence has one or two aspects (names from a fixed list). An aspect's sentiment is decided either by the text
(a sentiment word in its clause: "Alice is brilliant") or, for about `image_share` of the aspects, by the image alone:
its clause only points at the picture ("look at Alice in this photo") and the image carries a coloured disc, green for
positive, yellow for neutral, red for negative. A sentence has at most one such aspect, so the disc is unambiguous.
Image-decided sentiments are uniform over the three classes and independent of the words, so a text-only model can
at best guess them; `text_only_ceiling` gives the highest F1 it can reach in expectation. Everything is deterministic
given the seed.

The OCR variant (`ocr_cue=True`, `mmlabel data synth OUT --ocr-cue`) also writes the cue into the photo as a word: a
128x128 photo, the picture above a white band in which an image-decided aspect's photo shows a sentiment word in
capitals ("BRILLIANT", "TYPICAL", "AWFUL"), large enough for Tesseract to read. A describer that reads it (`ocr`)
turns the image's cue into text, which a text + context model can use where a text-only model cannot.
"""
import json
import random
from dataclasses import dataclass
from pathlib import Path

from mmlabel.data.example import SENTIMENTS, Example, Span

ASPECTS = [
    "Alice", "Boris", "Chloe Park", "Delta Airlines", "New York", "Lake Tahoe", "Manchester United", "Taylor Swift",
    "the Louvre", "Ed Sheeran", "Pixel Phone", "Tesla", "Harvard", "Wimbledon", "Barcelona", "Nintendo Switch",
    "Coldplay", "Uber", "Netflix", "Mount Fuji", "Golden Gate Bridge", "Serena Williams", "Starbucks", "Berlin",
]
WORDS = {
    "POS": ["brilliant", "amazing", "wonderful", "great", "lovely", "fantastic"],
    "NEU": ["okay", "average", "ordinary", "so-so", "fine", "typical"],
    "NEG": ["awful", "terrible", "horrible", "dreadful", "disappointing", "poor"],
}
TEXT_CLAUSES = ["{a} is {w}", "{a} was {w} today", "so {w} , {a}", "{a} looks {w} again", "honestly {a} is {w}"]
IMAGE_CLAUSES = ["look at {a} in this photo", "{a} , see the picture", "here is {a} on camera", "{a} in the pic"]
PREFIXES = ["", "", "RT @ fan_club :", "RT @ daily_news :", "# weekend"]
SUFFIXES = ["", "", "# travel", "# mood", "!", "http://t.co/x"]
DISC_COLOURS = {"POS": (40, 190, 60), "NEU": (230, 200, 40), "NEG": (210, 40, 40)}
IMAGE_SIZE = 64
CUE_IMAGE_SIZE, CUE_BAND, CUE_FONT_SIZE = 128, 32, 20  # the OCR variant: picture 128x96, band 128x32, letters 20 px
# Cue words: the sentiment words short enough to fit the band in capitals (all but "disappointing").
CUE_WORDS = {label: [word for word in words if len(word) <= 9] for label, words in WORDS.items()}
SPLITS = ("train", "dev", "test")


@dataclass
class SyntheticPost:
    """One generated post: the example and the index of its image-decided aspect among its spans (or None)."""

    example: Example
    image_aspect: int | None


def make_posts(count: int, seed: int, split: str, image_share: float = 0.5) -> list[SyntheticPost]:
    """`count` posts for one split; their images are drawn by `draw_image`."""
    rng = random.Random(f"mmlabel-synth-{seed}-{split}")
    # Sentences hold 1.5 aspects on average and at most one image aspect, hence the chance of one per sentence.
    image_chance = min(1.0, image_share * 1.5)
    return [_post(rng, f"{split}-{index:04d}", image_chance) for index in range(count)]


def _post(rng: random.Random, post_id: str, image_chance: float) -> SyntheticPost:
    aspects = rng.sample(ASPECTS, rng.choice([1, 2]))
    image_aspect = rng.randrange(len(aspects)) if rng.random() < image_chance else None
    tokens = rng.choice(PREFIXES).split()
    spans = []
    for index, aspect in enumerate(aspects):
        if index:
            tokens.append(rng.choice(["and", ";", ","]))
        label = rng.choice(SENTIMENTS)
        template = rng.choice(IMAGE_CLAUSES if index == image_aspect else TEXT_CLAUSES)
        before, _, after = template.partition("{a}")
        word = rng.choice(WORDS[label])
        tokens += before.format(w=word).split()
        spans.append(Span(len(tokens), len(tokens) + len(aspect.split()), label))
        tokens += aspect.split() + after.format(w=word).split()
    tokens += rng.choice(SUFFIXES).split()
    return SyntheticPost(Example(post_id, tokens, f"{post_id}.png", spans), image_aspect)


def draw_image(post: SyntheticPost, seed: int):
    """A 64x64 grey picture with grey distractor shapes and, for an image-decided aspect, a disc of its colour."""
    from PIL import Image, ImageDraw

    rng = random.Random(f"mmlabel-synth-image-{seed}-{post.example.id}")
    grey = rng.randint(90, 170)
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (grey, grey, grey))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 4)):
        shade = rng.randint(40, 220)
        x, y = rng.randint(0, 48), rng.randint(0, 48)
        draw.rectangle([x, y, x + rng.randint(6, 16), y + rng.randint(6, 16)], fill=(shade, shade, shade))
    if post.image_aspect is not None:
        colour = tuple(max(0, min(255, channel + rng.randint(-20, 20)))
                       for channel in DISC_COLOURS[post.example.spans[post.image_aspect].label])
        radius = rng.randint(8, 13)
        x, y = rng.randint(radius, IMAGE_SIZE - radius), rng.randint(radius, IMAGE_SIZE - radius)
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    return image


def draw_cue_image(post: SyntheticPost, seed: int):
    """The OCR variant's photo: `draw_image`'s picture stretched to 128x96 above a white 128x32 band, which holds the
    image-decided aspect's cue as a sentiment word in black capitals (empty for a post without one)."""
    from PIL import Image, ImageDraw, ImageFont

    width, picture_height = CUE_IMAGE_SIZE, CUE_IMAGE_SIZE - CUE_BAND
    image = Image.new("RGB", (width, CUE_IMAGE_SIZE), (255, 255, 255))
    image.paste(draw_image(post, seed).resize((width, picture_height), Image.Resampling.BILINEAR), (0, 0))
    word = cue_word(post, seed)
    if word:
        font = ImageFont.load_default(size=CUE_FONT_SIZE)
        ImageDraw.Draw(image).text((width // 2, picture_height + CUE_BAND // 2), word.upper(), fill=(0, 0, 0),
                                   font=font, anchor="mm")
    return image


def cue_word(post: SyntheticPost, seed: int) -> str:
    """The word the OCR variant writes into the photo of `post`: a sentiment word of its image-decided aspect's
    label, or "" when no aspect is decided by the image. Drawn from a generator of its own, so that the pictures
    and sentences are those of the plain dataset."""
    if post.image_aspect is None:
        return ""
    rng = random.Random(f"mmlabel-synth-cue-{seed}-{post.example.id}")
    return rng.choice(CUE_WORDS[post.example.spans[post.image_aspect].label])


def text_only_ceiling(posts: list[SyntheticPost]) -> float:
    """The highest expected F1 (in %) of a model that reads only the text: it can extract every aspect and read every
    text-decided sentiment, but an image-decided one is right with probability 1/3 whatever it guesses. Including
    such aspects with a guess, or leaving them all out, is best (F1 is monotone in how many it includes)."""
    image_aspects = sum(1 for post in posts if post.image_aspect is not None)
    text_aspects = sum(len(post.example.spans) for post in posts) - image_aspects
    if not text_aspects + image_aspects:
        return 0.0
    guess_all = (text_aspects + image_aspects / 3) / (text_aspects + image_aspects)
    leave_out = 2 * text_aspects / (2 * text_aspects + image_aspects)
    return 100.0 * max(guess_all, leave_out)


def write_synthetic(out: Path, train: int = 400, dev: int = 100, test: int = 100, seed: int = 13,
                    image_share: float = 0.5, ocr_cue: bool = False) -> dict[str, dict]:
    """Write `out/{train,dev,test}.txt` (jml), `out/images/*.png` and `out/synth.json`; return the per-split summary
    (sentences, aspects, image-decided aspects, their share and the text-only F1 ceiling). With `ocr_cue`, the
    photos are the OCR variant's (`draw_cue_image`); the sentences are the same."""
    from mmlabel.readers.jml import JmlReader

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict] = {}
    for split, count in zip(SPLITS, (train, dev, test)):
        posts = make_posts(count, seed, split, image_share)
        JmlReader().write([post.example for post in posts], out / f"{split}.txt")
        for post in posts:
            draw = draw_cue_image if ocr_cue else draw_image
            draw(post, seed).save(out / "images" / post.example.image)
        summary[split] = _summary(posts)
    settings = {"seed": seed, "image_share": image_share, **({"ocr_cue": True} if ocr_cue else {})}
    (out / "synth.json").write_text(json.dumps({**settings, "splits": summary}, indent=2) + "\n", encoding="utf-8")
    return summary


def _summary(posts: list[SyntheticPost]) -> dict:
    aspects = sum(len(post.example.spans) for post in posts)
    image_aspects = sum(1 for post in posts if post.image_aspect is not None)
    return {
        "sentences": len(posts),
        "aspects": aspects,
        "image_aspects": image_aspects,
        "image_share": round(image_aspects / aspects, 4) if aspects else 0.0,
        "text_only_f1_ceiling": round(text_only_ceiling(posts), 2),
    }
