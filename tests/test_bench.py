"""`mmlabel bench`: the command works at tiny size (the real measurement is docs/performance.md's, never a test), its
settings are what they say, and the allocator tuning behind the `allocator` optimisation."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, run_cli
from mmlabel.benchmark import OPTIMISATIONS, _batches, _build, applicable, make_workload, setting_flags
from mmlabel.benchmark_models import default_model, recipe_model

TINY = ["--text-size", "tiny", "--image-model", "vit_tiny_patch16_224", "--steps", "2", "--rounds", "1"]
# The quickstart's components and sizes (64-pixel images, two-layer encoders): what the tests that run workers time.
QUICKSTART = ["--recipe", "quickstart", "--steps", "2", "--rounds", "1"]


@pytest.fixture
def workers_here(monkeypatch):
    """Each setting's worker run in this process (what `mmlabel bench` does in a worker process per setting and
    round, the JSON round trip kept): the jobs it was given, in order."""
    from mmlabel import benchmark

    jobs = []

    def run_here(job: dict) -> dict:
        jobs.append(json.loads(json.dumps(job)))
        return json.loads(json.dumps(benchmark.worker(jobs[-1])))

    monkeypatch.setattr(benchmark, "_run_worker", run_here)
    monkeypatch.setenv("MMLABEL_ALLOCATOR", "system")  # the worker's own choice, not this process's
    return jobs


def test_bench_train_at_tiny_size_reports_both_settings_and_their_ratio(monkeypatch):
    """Each setting's figures are the median speed over its rounds and the highest peak of what its workers
    measured, the rounds alternate the settings' order, each worker gets its setting's optimisations, and the
    ratio is optimised over naive."""
    from mmlabel import benchmark

    measured = {"naive": [(2.0, 100.0), (5.0, 130.0), (3.0, 90.0)],  # (examples/s, peak MB) of each round
                "optimised": [(9.0, 70.0), (6.0, 80.0), (12.0, 75.0)]}
    jobs = []

    def fake_worker(job: dict) -> dict:
        jobs.append(job)
        speed, peak = measured[job["setting"]][sum(j["setting"] == job["setting"] for j in jobs) - 1]
        return {"examples_per_s": speed, "peak_mb": peak, "device": "cpu", "step_ms": 1000 / speed}

    monkeypatch.setattr(benchmark, "_run_worker", fake_worker)
    result = run_cli("bench", "train", *TINY, "--rounds", "3", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) == {"naive", "optimised", "ratio"}
    assert [job["setting"] for job in jobs] == ["naive", "optimised", "optimised", "naive", "naive", "optimised"]
    assert {job["setting"]: job["flags"] for job in jobs} == {"naive": [], "optimised": applicable("train", False)}
    assert all(job["steps"] == 2 and job["mode"] == "train" for job in jobs)
    assert (figures["naive"]["examples_per_s"], figures["naive"]["peak_mb"]) == (3.0, 130.0)
    assert (figures["optimised"]["examples_per_s"], figures["optimised"]["peak_mb"]) == (9.0, 80.0)
    assert figures["naive"]["rounds"] == [2.0, 5.0, 3.0] and figures["ratio"] == 3.0


def test_a_worker_measures_its_setting_of_the_quickstart(workers_here):
    result = run_cli("bench", "train", *QUICKSTART, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert [job["setting"] for job in workers_here] == ["naive", "optimised"]
    for setting in ("naive", "optimised"):
        assert figures[setting]["examples_per_s"] > 0 and figures[setting]["peak_mb"] > 0
        # the timed steps take the time the speed says: `steps` batches of `batch` examples
        assert 0 < figures[setting]["alignment_ms"] < figures[setting]["step_ms"]
        batch = workers_here[0]["batch"]
        assert figures[setting]["step_ms"] == pytest.approx(1000 * batch / figures[setting]["examples_per_s"], rel=1e-6)


@pytest.mark.system  # several mmlabel processes at once
def test_bench_predict_one_setting_only_runs_that_setting_each_in_a_worker_process():
    """Without --only, every setting; with it, that one alone; each in a worker process of its own (the real
    ones, here), whose figures come back as JSON."""
    result = run_cli("bench", "predict", *QUICKSTART, "--only", "without-bf16", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) == {"without-bf16"} and figures["without-bf16"]["examples_per_s"] > 0


def test_settings_name_their_optimisations():
    assert setting_flags("naive", "train", False) == []
    assert setting_flags("optimised", "train", True) == applicable("train", True)
    assert "cache" not in applicable("train", False)  # nothing to cache when the image encoder trains
    assert "inference" not in applicable("train", True) and "fused_adamw" not in applicable("predict", False)
    assert set(applicable("predict", True, accelerator=True)) | {"fused_adamw"} == set(OPTIMISATIONS)
    assert setting_flags("without-padding", "predict", False) == [f for f in applicable("predict", False) if f != "padding"]
    with pytest.raises(ValueError, match="without-cache"):
        setting_flags("without-cache", "train", False)


def test_a_decoding_worker_is_an_optimisation_beside_an_accelerator_only():
    assert "workers" in applicable("train", False, accelerator=True)
    assert "workers" not in applicable("train", False, accelerator=False)
    assert setting_flags("with-workers", "train", False, accelerator=False) == applicable("train", False, False) + ["workers"]


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    return make_workload(tmp_path_factory.mktemp("bench"), lengths=[3, 6, 10], examples=24, images=4)


def _job(workload, flags, mode="train"):
    model = default_model(workload, "tiny", "vit_tiny_patch16_224", "cache" in flags, "sinkhorn")
    return {"mode": mode, "flags": flags, "model": model, "batch": 4, "freeze_image": "cache" in flags,
            "workload": str(workload)}


def _first_batches(workload, flags, mode="train", count=4):
    import torch

    job = _job(workload, flags, mode)
    model, dataset, collate = _build(job, torch.device("cpu"))
    batches = _batches(dataset, collate, job)
    return [next(batches) for _ in range(count)]


def test_the_naive_setting_writes_attention_out_in_both_encoders(workload):
    import torch

    for flags, text, image in (([], "eager", "eager"), (["attention"], "sdpa", "auto")):
        model, _, _ = _build(_job(workload, flags), torch.device("cpu"))
        assert model.text_encoder.model.config._attn_implementation == text
        assert model.image_encoder.config.attention == image


def test_the_naive_setting_pads_every_batch_to_60_tokens_and_the_optimised_one_to_its_longest(workload):
    assert {batch["input_ids"].shape[1] for batch in _first_batches(workload, [])} == {60}
    optimised = _first_batches(workload, ["padding"])
    assert len({batch["input_ids"].shape[1] for batch in optimised}) > 1
    for batch in optimised:
        assert batch["attention_mask"][:, -1].any()  # the longest sentence reaches the last column
        assert batch["input_ids"].shape[1] < 60


def test_prediction_batches_are_32_with_the_inference_optimisation(workload):
    assert [b["input_ids"].shape[0] for b in _first_batches(workload, ["inference"], "predict", 1)] == [24]
    assert [b["input_ids"].shape[0] for b in _first_batches(workload, [], "predict", 1)] == [4]


def test_cached_frozen_image_states_replace_the_pixels(workload):
    (batch,) = _first_batches(workload, ["cache"], count=1)
    assert "image_states" in batch and "pixel_values" not in batch
    (batch,) = _first_batches(workload, [], count=1)
    assert "pixel_values" in batch and "image_states" not in batch


# In a fresh process: tune (or not), then ask glibc (mallinfo2) whether a 64 MB block came from mmap and whether
# the heap keeps the memory once the block is freed; what the tuning is for, not what the function returns.
ALLOCATION_PROBE = """
import ctypes
from mmlabel.device import keep_freed_memory

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype, libc.malloc.restype = Info, ctypes.c_void_p
tuned = keep_freed_memory()
before = libc.mallinfo2()
block = libc.malloc(64 << 20)
mapped = libc.mallinfo2().hblks - before.hblks
libc.free(ctypes.c_void_p(block))
print(tuned, mapped, libc.mallinfo2().fordblks - before.fordblks >= 63 << 20)  # free bytes the heap holds
"""


def _allocator_in_subprocess(env: dict) -> list[str]:
    environment = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", ALLOCATION_PROBE], capture_output=True, text=True,
                          env=environment, check=True).stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux only")
def test_the_allocator_is_tuned_unless_the_user_asks_for_the_system_default():
    # tuned: the block comes from the heap, which keeps it after free; glibc's default maps and unmaps it
    assert _allocator_in_subprocess({}) == ["True", "0", "True"]
    assert _allocator_in_subprocess({"MMLABEL_ALLOCATOR": "system"}) == ["False", "1", "False"]


def test_profile_prints_the_costliest_operations_of_the_timed_steps(workers_here):
    result = run_cli("bench", "train", *QUICKSTART, "--only", "optimised", "--profile", "--steps", "1")
    assert result.returncode == 0, result.stderr
    assert "optimised, profile of the timed steps:" in result.stdout
    assert "aten::" in result.stdout and "Self CPU" in result.stdout


def test_a_recipe_is_timed_with_its_own_components_and_random_weights_of_the_same_shapes(tmp_path):
    from mmlabel.recipe import load_recipe

    model, notes = recipe_model(load_recipe("dtca"), tmp_path, "base")
    text, image = model["text_encoder"], model["image_encoder"]
    assert text["init"] == "random" and text["model_type"] == "roberta" and text["tokenizer"] == str(tmp_path / "tokenizer")
    assert notes == ["text_encoder: 'roberta-base' is not a local folder; timed as a random roberta of base sizes"]
    assert image["model"] == "vit_base_patch16_224.orig_in21k" and image["pretrained"] is False
    assert image["resize"] == "squash"
    assert model["alignment_loss"]["name"] == "emd" and model["alignment_loss"]["cost"] == "cosine"
    assert model["loss"]["crf_reduction"] == "sum" and model["loss"]["crf_weight"] == 0.1
    albert, _ = recipe_model(load_recipe("dtca", ["text_encoder.checkpoint=albert-base-v2"]), tmp_path, "base")
    assert albert["text_encoder"]["config_overrides"]["hidden_size"] == 768  # not ALBERT's xxlarge default config


def test_bench_a_recipe_with_another_alignment_reports_the_alignment_share(workers_here):
    result = run_cli("bench", "train", "--recipe", "quickstart", "--also-alignment", "emd", "--also-fusion-head",
                     "text", "--steps", "2", "--rounds", "1", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) == {"naive", "optimised", "alignment-emd", "fusion-text", "ratio"}
    assert "alignment_ms" not in figures["fusion-text"]  # the text-only row: no image, no alignment
    for setting in ("naive", "optimised", "alignment-emd"):
        assert 0 < figures[setting]["alignment_ms"] < figures[setting]["step_ms"]
        assert figures[setting]["alignment_share"] == pytest.approx(
            figures[setting]["alignment_ms"] / figures[setting]["step_ms"])


def test_bench_options_that_need_a_recipe_or_a_known_name_fail_in_one_line():
    for arguments, expected in ((["--fusion-head", "dtca"], "--recipe"), (["--also-alignment", "emdd"], "'emd'"),
                                (["--also-fusion-head", "gatde"], "'gated'"),
                                (["--recipe", "quickstart", "--set", "fusion_head.name=nope"], "nope")):
        result = run_cli("bench", "train", *TINY, *arguments)
        assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.slow
def test_the_gpu_script_runs_on_a_cpu_at_tiny_size(tmp_path):
    """benchmarks/gpu.sh end to end (about 6 minutes on 2 busy cores, most of it compiling): its three JSON files,
    with the compiled and the Sinkhorn settings beside naive and optimised."""
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh"), str(tmp_path), "--text-size", "tiny",
                             "--set", "image_encoder.model=vit_tiny_patch16_224", "--steps", "2", "--rounds", "1"],
                            cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    train = json.loads((tmp_path / "bench-train.json").read_text())
    predict = json.loads((tmp_path / "bench-predict.json").read_text())
    assert set(train) == {"naive", "optimised", "with-compile", "alignment-sinkhorn", "ratio"}
    assert set(predict) == {"naive", "optimised", "with-compile", "ratio"}
    assert json.loads((tmp_path / "machine.json").read_text())["device"] == "cpu"
