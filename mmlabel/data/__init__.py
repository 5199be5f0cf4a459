"""Data: examples, images, statistics and the synthetic dataset (tag schemes are components: `mmlabel.tag_schemes`)."""
