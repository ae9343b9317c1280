"""The trainer's cluster environment: Lightning's plain one without asking mpi4py where nothing launched the process,
Lightning's own detection (SLURM, TorchElastic, MPI ...) wherever something did."""

from __future__ import annotations

import pytest
from lightning.fabric.plugins.environments import LightningEnvironment, MPIEnvironment, SLURMEnvironment
from omegaconf import OmegaConf

from deepprompt.runs.build import MPI_LAUNCHER_VARIABLES, build_trainer

LAUNCH_VARIABLES = (
    *MPI_LAUNCHER_VARIABLES,
    *("SLURM_NTASKS", "SLURM_JOB_NAME", "SLURM_NODELIST", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID"),
    *("RANK", "GROUP_RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "WORLD_SIZE", "LSB_JOBID", "LSB_DJOB_RANKFILE"),
)


@pytest.fixture
def mpi_checks(monkeypatch):
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    checks = []
    monkeypatch.setattr(MPIEnvironment, "detect", staticmethod(lambda: checks.append(1) or False))
    return checks


def _trainer(tmp_path, **trainer):
    cfg = OmegaConf.create(
        {
            "trainer": {
                "_target_": "lightning.pytorch.Trainer",
                "accelerator": "cpu",
                "devices": 1,
                "default_root_dir": str(tmp_path),
                **trainer,
            }
        }
    )
    return build_trainer(cfg, {}, interactive=False)


def test_plain_process_gets_lightning_environment_without_mpi_check(mpi_checks, tmp_path):
    trainer = _trainer(tmp_path)
    assert type(trainer._accelerator_connector.cluster_environment) is LightningEnvironment
    assert mpi_checks == []  # the check imports mpi4py.MPI where installed


def test_mpi_launcher_leaves_detection_to_lightning(mpi_checks, monkeypatch, tmp_path):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "1")
    _trainer(tmp_path)
    assert mpi_checks == [1]


def test_slurm_is_still_detected(mpi_checks, monkeypatch, tmp_path):
    slurm = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_NODELIST": "node1"}
    for name, value in {**slurm, "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}.items():
        monkeypatch.setenv(name, value)
    trainer = _trainer(tmp_path)
    assert isinstance(trainer._accelerator_connector.cluster_environment, SLURMEnvironment)
