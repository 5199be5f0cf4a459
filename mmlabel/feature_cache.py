"""Patch states of a frozen image encoder, computed once per image and kept in memory, so that later epochs (and
every dev evaluation) do not run the image encoder at all.

A frozen encoder is a fixed function of the image in eval mode, so a cached state equals the one a step would
compute. The cache lives for one run; its pixels come from the run's pixel source (the image store, or the
encoder's `transform` for an encoder without `pixel_transform`), and photos with the same content key (the same
file bytes, or blank) share one entry."""
import torch


class ImageFeatureCache:
    """Image name -> (patches, hidden) states and (patches,) mask of a frozen image encoder, on the CPU."""

    def __init__(self, encoder: torch.nn.Module, pixels, device: torch.device, precision: str = "fp32"):
        self.encoder = encoder
        self.pixels = pixels  # an ImageStore or DecodedImages (mmlabel.data.image_store)
        self.device = device
        self.precision = precision
        self.features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.features)

    def get(self, name: str | None) -> tuple[torch.Tensor, torch.Tensor]:
        key = self.pixels.identity(name)
        if key not in self.features:
            self.fill([name])
        return self.features[key]

    def fill(self, names: list[str | None], batch_size: int = 32) -> None:
        """Encode every image of `names` not cached yet, in batches. Every absent image (no name, or no file under
        the `blank` policy) is the one blank image: encoded once, not once per post."""
        from mmlabel.device import autocast

        missing: dict[str, str | None] = {}  # content key -> a name that has it
        for name in names:
            key = self.pixels.identity(name)
            if key not in self.features:
                missing.setdefault(key, name)
        self.encoder.eval()
        chunks = list(missing.items())
        for start in range(0, len(chunks), batch_size):
            chunk = chunks[start:start + batch_size]
            pixels = torch.stack([self.pixels.get(name) for _, name in chunk]).to(self.device)
            with torch.inference_mode(), autocast(self.device, self.precision):
                states, mask = self.encoder(pixels)  # (batch, patches, hidden), (batch, patches)
            for (key, _), example_states, example_mask in zip(chunk, states.float().cpu(), mask.cpu()):
                self.features[key] = (example_states.clone(), example_mask.clone())


def is_frozen(module: torch.nn.Module | None) -> bool:
    """Whether a module has parameters and none of them is trained."""
    parameters = list(module.parameters()) if module is not None else []
    return bool(parameters) and not any(parameter.requires_grad for parameter in parameters)
