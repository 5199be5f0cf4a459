"""The `no_host_reads` guard: each way of reading a tensor back to the host raises inside it, counted per method and
per thread, and torch.Tensor is left as it was."""
import threading

import numpy
import pytest
import torch

from mmlabel.testing.host_reads import READS, HostRead, no_host_reads

READS_OF = {  # a call that reads `tensor` (one element, on the CPU) back, per guarded method
    "item": lambda tensor: tensor.item(),
    "tolist": lambda tensor: tensor.tolist(),
    "cpu": lambda tensor: tensor.cpu(),
    "numpy": lambda tensor: numpy.asarray(tensor),
    "__bool__": lambda tensor: 1 if tensor else 0,
    "__float__": lambda tensor: float(tensor),
    "__int__": lambda tensor: int(tensor),
    "__index__": lambda tensor: [0, 1][tensor],
    "to": lambda tensor: meta_to_cpu(),
    "__getitem__": lambda tensor: tensor[tensor > 0],
    "nonzero": lambda tensor: tensor.nonzero(),
    "masked_select": lambda tensor: tensor.masked_select(tensor > 0),
    "unique": lambda tensor: tensor.unique(),
}


def meta_to_cpu() -> None:
    """A move off another device to the CPU (a meta tensor has no data to copy, so the move itself fails)."""
    try:
        torch.empty(1, device="meta").to("cpu")
    except NotImplementedError:
        pass


def test_every_guarded_method_has_a_read_here():
    assert set(READS_OF) == set(READS)


@pytest.mark.parametrize("method", READS)
def test_each_read_raises_and_is_counted(method):
    tensor = torch.tensor([1])
    with no_host_reads() as calls:
        with pytest.raises(HostRead, match=method):
            READS_OF[method](tensor)
    assert calls == {method: 1}


@pytest.mark.parametrize("method", READS)
def test_allowed_reads_pass_up_to_their_count(method):
    tensor = torch.tensor([1])
    with no_host_reads(allowed={method: 2}) as calls:
        READS_OF[method](tensor)
        READS_OF[method](tensor)
        with pytest.raises(HostRead, match=r"call 3, 2 allowed"):
            READS_OF[method](tensor)
    assert calls == {method: 3}


def test_device_work_and_moves_that_stay_on_the_device_pass():
    tensor = torch.randn(3, 4, requires_grad=True)
    with no_host_reads() as calls:
        (tensor.softmax(1) * torch.where(tensor > 0, 1.0, 2.0)).sum().backward()
        tensor.to(torch.float64), tensor.to("cpu"), tensor.detach().to(tensor)  # a CPU tensor stays on the CPU
    assert not calls and tensor.grad is not None


def test_other_threads_read_freely():
    tensor = torch.tensor([1.5])
    seen = []
    with no_host_reads() as calls:
        thread = threading.Thread(target=lambda: seen.append(tensor.item()))
        thread.start()
        thread.join()
    assert seen == [1.5] and not calls


def test_tensor_is_restored_after_the_block_even_after_an_error():
    before = {name: torch.Tensor.__dict__.get(name) for name in READS}
    with pytest.raises(HostRead):
        with no_host_reads():
            with no_host_reads(allowed={"item": 1}):  # nested: the outer guard still refuses what it refuses
                torch.tensor(1).item()
    assert {name: torch.Tensor.__dict__.get(name) for name in READS} == before
    assert torch.tensor(2).item() == 2 and bool(torch.tensor(True))


def test_an_unknown_method_name_is_refused():
    with pytest.raises(ValueError, match="tolsit"):
        with no_host_reads(allowed={"tolsit": 1}):
            pass


def test_indexing_reads_only_with_a_boolean_mask():
    tensor = torch.arange(4)
    with no_host_reads() as calls:
        tensor[1], tensor[1:3], tensor[torch.tensor([0, 2])], tensor[None, :2]
    assert calls["__getitem__"] == 0
    with no_host_reads() as calls, pytest.raises(HostRead, match="__getitem__"):
        tensor[:, None][tensor > 1, 0]
