"""Patch states of a frozen image encoder, computed once per image and kept in memory, so that later epochs (and
every dev evaluation) do not run the image encoder at all.

A frozen encoder is a fixed function of the image in eval mode, so a cached state equals the one a step would
compute. The cache lives for one run: its keys are the image names of that run's image folder, and the encoder
and transform are those of the run."""
import torch


class ImageFeatureCache:
    """Image name -> (patches, hidden) states and (patches,) mask of a frozen image encoder, on the CPU."""

    def __init__(self, encoder: torch.nn.Module, images, device: torch.device, precision: str = "fp32"):
        self.encoder = encoder
        self.images = images
        self.device = device
        self.precision = precision
        self.features: dict[str | None, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.features)

    def get(self, name: str | None) -> tuple[torch.Tensor, torch.Tensor]:
        key = self._key(name)
        if key not in self.features:
            self.fill([name])
        return self.features[key]

    def fill(self, names: list[str | None], batch_size: int = 32) -> None:
        """Encode every image of `names` not cached yet, in batches."""
        from mmlabel.device import autocast

        missing = list(dict.fromkeys(key for key in map(self._key, names) if key not in self.features))
        self.encoder.eval()
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            pixels = torch.stack([self.encoder.transform(self.images.load(name)) for name in chunk]).to(self.device)
            with torch.inference_mode(), autocast(self.device, self.precision):
                states, mask = self.encoder(pixels)  # (batch, patches, hidden), (batch, patches)
            for name, example_states, example_mask in zip(chunk, states.float().cpu(), mask.cpu()):
                self.features[name] = (example_states.clone(), example_mask.clone())

    def _key(self, name: str | None) -> str | None:
        """Every image that is absent (no name, or no file under the `blank` policy) is the one blank image: encoded
        once, not once per post (a run without its images would otherwise encode thousands of blanks)."""
        if name and (self.images.policy != "blank" or self.images.path(name).is_file()):
            return name
        return None  # ImageLoader.check counted the missing files up front


def is_frozen(module: torch.nn.Module | None) -> bool:
    """Whether a module has parameters and none of them is trained."""
    parameters = list(module.parameters()) if module is not None else []
    return bool(parameters) and not any(parameter.requires_grad for parameter in parameters)
