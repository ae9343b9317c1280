"""In-process checks of the DDP plumbing (no process group is started): the children's command line, exact
evaluation sharding, rank-zero writes, the launcher configs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import open_dict
from torch.utils.data import DataLoader, DistributedSampler

from deepprompt.runs import distributed as D
from tests.conftest import REPO

CONF = str(REPO / "conf")


@pytest.fixture
def hydra_job(tmp_path):
    """A composed config registered as the running Hydra job: job 1 of a ``-m`` sweep in ``tmp_path``."""

    def make(task_overrides: list[str], hydra_overrides: list[str]):
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose("train", overrides=task_overrides + hydra_overrides, return_hydra_config=True)
        run_dir = tmp_path / "multiruns" / "2026-01-01_00-00-00" / "1"
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
            cfg.hydra.runtime.cwd = str(tmp_path)
            cfg.hydra.job.name = "train"
            cfg.hydra.job.config_name = "train"
            cfg.hydra.overrides.task = task_overrides
            cfg.hydra.overrides.hydra = ["hydra.mode=MULTIRUN", *hydra_overrides]
        HydraConfig.instance().set_config(cfg)
        return run_dir

    yield make
    HydraConfig.instance().cfg = None


def test_child_reruns_the_job_not_the_sweep(hydra_job, tmp_path):
    """Lightning's default re-runs sys.argv (`-m ... length=2,8`): every child would run the whole sweep.
    Our children run this job's overrides in RUN mode, into this job's folder, without writing .hydra/."""
    task = ["backbone=tiny", "trainer=ddp_cpu", "method.prompt.length=8", "method.prompt.layers=[0,1]"]
    run_dir = hydra_job(task, ["hydra/launcher=local", "hydra.job.chdir=false"])
    command, cwd = D.child_command(1, entry_module="deepprompt.train")
    assert command[:3] == [sys.executable, "-m", "deepprompt.train"]
    assert cwd == str(tmp_path)
    assert "-m" not in command[3:] and "--multirun" not in command
    assert all(o in command for o in task)
    assert "hydra.mode=MULTIRUN" not in command and "hydra.mode=RUN" in command
    assert "hydra/launcher=local" in command and "hydra.job.chdir=false" in command
    assert f"hydra.run.dir='{run_dir}'" in command and "hydra.output_subdir=null" in command
    assert f"hydra.job_logging.handlers.file.filename='{run_dir / 'train_rank1.log'}'" in command
    # the command composes: Hydra accepts every override it holds
    overrides = [o for o in command[4:] if not o.startswith("hydra.job_logging")]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    assert cfg.method.prompt.length == 8 and cfg.trainer.devices == 2
    assert cfg.hydra.run.dir == str(run_dir) and cfg.hydra.output_subdir is None


def test_child_entry_inside_a_submitit_job_is_the_app_not_submitit(hydra_job, monkeypatch):
    hydra_job(["backbone=tiny"], [])
    fake_main = type(sys)("__main__")
    fake_main.__spec__ = type("Spec", (), {"name": "submitit.core._submit"})()
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    command, _ = D.child_command(1)
    assert command[:3] == [sys.executable, "-m", "deepprompt.train"]


def test_quote_survives_special_characters():
    assert D._quote("/a/b=c,d e") == "'/a/b=c,d e'"
    assert D._quote("it's") == "'it\\'s'"


@pytest.mark.parametrize("n", [15, 16, 3])
def test_eval_loader_shards_without_repeats(n):
    """DistributedSampler pads 15 examples to 16 on 2 ranks (one scored twice); ours scores each once."""
    data = list(range(n))
    padded, exact = [], []
    for rank in range(2):
        loader = DataLoader(data, batch_size=4, sampler=DistributedSampler(data, 2, rank, shuffle=False))
        padded += [int(i) for batch in loader for i in batch]
        fixed = D.unrepeated_eval_loader(loader)
        assert fixed.batch_size == 4 and fixed.sampler.num_replicas == 2
        exact += [int(i) for batch in fixed for i in batch]
    assert sorted(exact) == data
    assert len(padded) == n + n % 2


def test_eval_loader_needs_one_example_per_rank():
    data = [0]
    loader = DataLoader(data, sampler=DistributedSampler(data, 2, 1, shuffle=False))
    with pytest.raises(Exception, match="every process needs at least one"):
        D.unrepeated_eval_loader(loader)


def test_loaders_without_a_plain_distributed_sampler_are_untouched():
    data = list(range(8))
    loader = DataLoader(data, batch_size=2)
    assert D.unrepeated_eval_loader(loader) is loader


def test_only_rank_zero_records_a_finished_run(tmp_path, monkeypatch):
    written = []

    def write(run_dir, summary):
        written.append(summary)
        (Path(run_dir) / "metrics.json").write_text(json.dumps(summary))

    writer = D.rank_zero_writer(write)
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    writer(tmp_path, {"status": "finished"})
    assert written == []
    writer(tmp_path, {"status": "failed", "error": "boom"})  # a child's failure is recorded ...
    assert written[-1]["rank"] == 1
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    writer(tmp_path, {"status": "finished"})
    assert written[-1] == {"status": "finished"}
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    writer(tmp_path, {"status": "failed", "error": "late"})  # ... but never over a finished record
    assert len(written) == 2


def test_slurm_launcher_matches_the_trainer():
    """tasks_per_node must equal devices (Lightning's SLURMEnvironment checks it), nodes num_nodes."""
    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(
            "train", overrides=[*overrides, "hydra.launcher.partition=gpu"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 2)
    assert launcher.partition == "gpu"
    assert f"export OMP_NUM_THREADS={launcher.cpus_per_task}" in launcher.setup
    assert cfg.trainer.strategy._target_ == "deepprompt.runs.distributed.HydraDDPStrategy"


def test_local_launcher_and_ddp_cpu_compose():
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(
            "train", overrides=["hydra/launcher=local", "trainer=ddp_cpu"], return_hydra_config=True
        )
    assert cfg.hydra.launcher._target_.endswith("LocalLauncher")
    assert cfg.hydra.launcher.tasks_per_node == 1
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.devices == 2
    assert cfg.trainer.strategy.process_group_backend == "gloo"


def test_strategy_builds_with_our_launcher():
    from lightning.pytorch import Trainer

    trainer = Trainer(
        strategy=D.HydraDDPStrategy(process_group_backend="gloo"),
        accelerator="cpu",
        devices=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    assert isinstance(trainer.strategy._launcher, D.HydraJobLauncher)
    assert torch.distributed.is_initialized() is False


def test_a_finished_ddp_job_leaves_no_group_nor_launch_env(hydra_job, monkeypatch):
    """What the next job of a multirun process (DDP or not) must not inherit from the previous DDP job."""
    import subprocess

    hydra_job(["backbone=tiny"], [])
    for key in D.LAUNCH_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    monkeypatch.setattr(D._Launched, "procs", [child])
    monkeypatch.setattr(D._Launched, "env_before", {key: None for key in D.LAUNCH_ENV})
    monkeypatch.setattr(D._Launched, "job_dir", "/an/earlier/job")
    D.release_previous_job(timeout_s=60)  # a new job: wait for the old children, drop group and env
    assert child.returncode == 0
    assert not torch.distributed.is_initialized()
    assert not any(key in os.environ for key in D.LAUNCH_ENV)
    assert D._Launched.procs == [] and D._Launched.env_before is None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
