"""Data-parallel training (docs/distributed.md): the sharded batch sampler, the effective batch size, and real
2-process runs through torchrun on CPU (gloo; the `system` tests): evaluating the saved model in one process gives
exactly the figures the distributed run recorded; a 2-process run stopped by SIGTERM after a checkpoint resumes in one
process."""
import json
import random
import shlex
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, process_environment, run_cli, run_process
from mmlabel.data.batches import LengthBucketSampler, ShardedBatchSampler

# 48 training sentences in batches of 4: 12 batches an epoch, 6 rounds of 2 processes
SETTINGS = ["--set", "train.batch_size=4", "--set", "train.lr=3e-3"]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # two processes on a small machine (conftest.py sets it for the suite too)


def bucket_sampler(examples: int = 50, batch_size: int = 4, seed: int = 7) -> LengthBucketSampler:
    lengths = [random.Random(index).randint(3, 40) for index in range(examples)]
    return LengthBucketSampler(lengths, batch_size, shuffle=True, seed=seed)


def shards(epoch: int, world_size: int, skip: int = 0, pad: bool = True, examples: int = 50) -> list[list[list[int]]]:
    result = []
    for rank in range(world_size):
        sampler = ShardedBatchSampler(bucket_sampler(examples), rank, world_size, pad)
        sampler.set_epoch(epoch, skip)
        assert len(sampler) == len(list(sampler))
        result.append(list(sampler))
    return result


def whole_epoch(epoch: int, skip: int = 0, examples: int = 50) -> list[list[int]]:
    sampler = bucket_sampler(examples)
    sampler.set_epoch(epoch, skip)
    return list(sampler)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_shards_are_disjoint_cover_every_batch_and_are_equal_in_number(world_size):
    batches = whole_epoch(1)  # 13 batches: 50 sentences in batches of 4
    parts = shards(1, world_size)
    assert len({len(part) for part in parts}) == 1  # DDP steps every process together
    taken = [tuple(batch) for part in parts for batch in part]
    assert sorted(set(taken)) == sorted(tuple(batch) for batch in batches)  # every batch, whole: buckets kept
    padding = len(taken) - len(batches)
    assert padding == -len(batches) % world_size  # only the padding is seen twice
    assert len(set(taken)) == len(taken) - padding


def test_shards_without_padding_partition_the_batches():
    batches = whole_epoch(1, examples=48)  # 12 batches
    assert sum(len(part) for part in shards(1, 5, pad=False, examples=48)) == len(batches)
    assert sorted(b for part in shards(1, 5, pad=False, examples=48) for b in part) == sorted(batches)
    assert [len(part) for part in shards(1, 5, pad=False, examples=48)] == [3, 3, 2, 2, 2]


def test_shards_reshuffle_each_epoch_and_repeat_for_the_same_epoch():
    assert shards(1, 2) == shards(1, 2)
    assert shards(1, 2) != shards(2, 2)
    assert [sorted(part) for part in shards(1, 2)] != [sorted(part) for part in shards(2, 2)]


@pytest.mark.parametrize(("written_by", "resumed_by"), [(2, 1), (2, 3), (1, 2), (3, 3)])
def test_a_skip_counted_over_all_processes_resumes_with_any_number(written_by, resumed_by):
    """A checkpoint after 2 rounds of N processes has trained on 2N batches of the epoch; M processes go on with
    the rest of the same order (padded, as any epoch, to a multiple of M)."""
    skip = 2 * written_by
    rest = [tuple(b) for part in shards(3, resumed_by, skip=skip) for b in part]
    left = [tuple(b) for b in whole_epoch(3)[skip:]]
    assert set(rest) >= set(left) and len(rest) - len(left) == -len(left) % resumed_by
    if resumed_by == written_by:  # the same processes get the same batches as in the uninterrupted epoch
        assert [part[2:] for part in shards(3, written_by)] == shards(3, written_by, skip=skip)


def test_the_effective_batch_size_round_trips_and_resume_ignores_it(tmp_path):
    import tomllib

    from mmlabel.errors import RunError
    from mmlabel.recipe import load_recipe, recipe_from_dict
    from mmlabel.training.assemble import with_effective_batch_size
    from mmlabel.run_dir import RunDir

    recipe = load_recipe(REPO / "recipes" / "quickstart.toml", ["train.grad_accum=3"])
    two = with_effective_batch_size(recipe, 2)
    assert two.train.effective_batch_size == 16 * 2 * 3
    assert recipe_from_dict(tomllib.loads(two.to_toml())) == two
    run = RunDir(tmp_path / "run")
    run.start(two.to_toml(), resume=False)
    run.start(with_effective_batch_size(recipe, 1).to_toml(), resume=True)  # 2 processes, resumed by 1
    other = with_effective_batch_size(load_recipe(REPO / "recipes" / "quickstart.toml", ["train.grad_accum=2"]), 1)
    with pytest.raises(RunError, match="differs"):
        run.start(other.to_toml(), resume=True)


def test_gradient_accumulation_in_one_process(synthetic, tmp_path, capsys):
    """Batches of 4, two per optimiser step: the effective batch of 2 processes x 4, in one process."""
    from mmlabel.recipe import load_recipe
    from mmlabel.training.runner import train_once

    recipe = load_recipe(REPO / "recipes" / "quickstart.toml", [
        f"data.root={synthetic}", "train.epochs=1", "train.batch_size=4", "train.grad_accum=2",
        "train.max_steps_per_epoch=3"])
    metrics = train_once(recipe, tmp_path / "run")
    assert "effective batch size 8 = 4 per process x 1 process x 2 accumulated" in capsys.readouterr().err
    assert "effective_batch_size = 8" in (tmp_path / "run" / "recipe.toml").read_text()
    (record,) = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert record["step"] == 3 and metrics["epochs"] == 1  # 6 batches, 3 optimiser steps


@pytest.mark.system
def test_bad_data_in_two_processes_is_one_error_line_from_rank_0(synthetic, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synthetic, data)
    with open(data / "train.txt", "a", encoding="utf-8") as handle:
        handle.write("a sentence with $T$ in it\naspect\nmaybe\n1.jpg\n")  # sentiment "maybe": not -1, 0 or 1
    result = run_process("train", "quickstart", "--out", str(tmp_path / "run"), "--set", f"data.root={data}",
                         *SETTINGS, "--nproc", "2", env=ONE_THREAD)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "train.txt:" in errors[0] and "rank" not in errors[0], result.stderr
    assert "Traceback" not in result.stderr and "ChildFailedError" not in result.stderr


# session: the xdist worker of the system tests may leave this module and come back to it
@pytest.fixture(scope="session")
def two_processes(synthetic, tmp_path_factory):
    """`mmlabel train --nproc 2`: torchrun on this machine, two CPU processes, gloo."""
    out = tmp_path_factory.mktemp("distributed") / "run"
    result = run_process("train", "recipes/quickstart.toml", "--out", str(out), "--set", f"data.root={synthetic}",
                         "--set", "train.epochs=3", *SETTINGS, "--nproc", "2", env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    return out, result


@pytest.mark.system
def test_the_nproc_shorthand_trains_in_two_processes_and_rank_0_alone_writes(two_processes):
    out, result = two_processes
    assert "effective batch size 8 = 4 per process x 2 processes x 1 accumulated" in result.stderr
    assert "effective_batch_size = 8" in (out / "recipe.toml").read_text()
    assert result.stdout.count(f"run: {out}") == 1 and result.stderr.count("epoch 1: loss") == 1
    assert "get no gradient" not in result.stderr  # DDP without find_unused_parameters
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in log] == [1, 2, 3]
    assert [record["step"] for record in log] == [6, 12, 18]  # 12 batches an epoch, 2 a step
    assert sum(record["best"] for record in log) >= 1
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


@pytest.mark.system
def test_parameters_without_gradient_switch_on_the_graph_search(synthetic, tmp_path):
    """With beta = 0 the image projection (32 -> 64) gets no gradient: every process finds it before the first step and DDP
    runs with find_unused_parameters (without it, the second step would fail waiting for that gradient)."""
    out = tmp_path / "run"
    result = run_process("train", "recipes/quickstart.toml", "--out", str(out), "--set", f"data.root={synthetic}",
                         "--set", "train.epochs=1", "--set", "loss.beta=0",
                         "--set", "image_encoder.model_args.embed_dim=32", *SETTINGS, "--nproc", "2", env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("2 parameters get no gradient (image_projection.weight, image_projection.bias)") == 1
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


@pytest.mark.system
@pytest.mark.parametrize("split", ["dev", "test"])
def test_one_process_evaluation_gives_exactly_the_distributed_figures(two_processes, split):
    out, _ = two_processes
    stored = json.loads((out / "metrics.json").read_text())[split]
    assert stored["predicted"] > 0  # a model that predicts spans: the comparison could fail
    result = run_cli("evaluate", str(out), "--split", split, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == stored
    predictions = [json.loads(line) for line in (out / f"predictions-{split}.jsonl").read_text().splitlines()]
    assert len(predictions) == 24  # each example once: no padding in evaluation


@pytest.mark.system
def test_a_two_process_checkpoint_resumes_in_one_process(synthetic, tmp_path):
    """torchrun passes SIGTERM on to both processes: they stop at the same step, rank 0 writes the checkpoint and
    prints one error line; then one process continues the run."""
    out = tmp_path / "run"
    arguments = ["train", "recipes/quickstart.toml", "--out", str(out), "--set", f"data.root={synthetic}",
                 "--set", "train.epochs=2", "--set", "train.checkpoint_every=1", *SETTINGS]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "mmlabel", *arguments]
    environment = process_environment(ONE_THREAD)
    process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate()
    assert process.returncode != 0 and not (out / "metrics.json").exists(), stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: SIGTERM: stopped after epoch "), stderr
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    from mmlabel.run_dir import RunDir

    checkpoint = RunDir(out).load_checkpoint()
    assert checkpoint["processes"] == 2 and len(checkpoint["rngs"]) == 2
    state = checkpoint["state"]
    assert state["step"] >= 1 and state["batch"] == 2 * (state["step"] % 6)  # 2 batches a step, 6 steps an epoch
    resume = shlex.split(errors[0].partition("resume with: ")[2])
    assert resume[-3:] == ["--nproc", "2", "--resume"]
    result = run_cli(*resume[1:-3], "--resume")  # the same command, in one process (this one)
    assert result.returncode == 0, result.stderr
    assert "resuming after epoch" in result.stderr
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in log] == [1, 2]
    assert "effective_batch_size = 4" in (out / "recipe.toml").read_text()  # the resumed part's
    metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads(run_cli("evaluate", str(out), "--json").stdout) == metrics["test"]
