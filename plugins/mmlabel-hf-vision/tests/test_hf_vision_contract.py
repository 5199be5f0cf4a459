"""The `hf_vision` encoder passes mmlabel's conformance kit, as every built-in component does: built small through
the registry, its states, mask, transform (picklable), export round trip, eval-mode determinism and its uint8 pixels
for the image store (normalised on the device as its transform does) are checked."""
import pytest

import mmlabel
import mmlabel_hf_vision
from mmlabel.testing import check_component, component_checks
from .test_hf_vision_encoder import TINY


@pytest.fixture(scope="module")
def registered():
    """The plugin registered as its entry point registers it (already so when it is installed)."""
    manager = mmlabel.get_plugin_manager()
    if any(name == "hf_vision" for name, _ in manager.list_name_plugin()):
        yield
        return
    manager.register(mmlabel_hf_vision, name="hf_vision")
    yield
    manager.unregister(name="hf_vision")


def test_hf_vision_passes_the_conformance_kit_with_its_tiny_options(registered):
    check_component("image_encoder", "hf_vision")


@pytest.mark.parametrize("model_type", ["dinov2_with_registers", "convnext"])
def test_other_families_pass_the_kit(registered, model_type):
    check_component("image_encoder", "hf_vision", model=model_type, pretrained=False, model_args=TINY[model_type],
                    cls_token=False)


def test_the_kit_runs_every_image_encoder_check(registered):
    names = [str(check).rsplit(":", 1)[1] for check in component_checks("image_encoder", "hf_vision")]
    assert names == ["build", "transform", "forward", "rows_independent", "export", "determinism", "pixels"]
