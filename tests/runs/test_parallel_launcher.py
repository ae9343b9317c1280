"""``hydra/launcher=parallel``: sweep jobs forked from a preloaded server, several at once, one GPU slot each.

The slot planning and the task lookup are pure functions; the launcher itself runs in real subprocesses: a
small Hydra app without torch (``tests/runs/parallel_app.py``, its server preloads nothing, so it starts in a
blink) for failures, dead jobs, GPU slots and signals, and one tiny deepprompt sweep for the start-up record.
"""

from __future__ import annotations

import inspect
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import hydra
import pytest

from hydra_plugins.deepprompt_launcher import _job, _slots
from hydra_plugins.deepprompt_launcher._slots import SlotError, parse_visible_devices, plan_slots
from tests.runs.helpers import REPO, TINY, metrics


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def decorated_task(cfg) -> None:
    """A module-level Hydra task (the launcher is handed the undecorated function)."""


# -- GPU slots ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "gpus"),
    [
        ("0,1,2", ["0", "1", "2"]),
        (" 3 , 5", ["3", "5"]),
        ("", []),
        ("-1", []),
        ("0,-1,2", ["0"]),  # CUDA stops at the first invalid entry
        ("GPU-8f3a-11,1", ["GPU-8f3a-11", "1"]),
        ("MIG-abc/1/0", ["MIG-abc/1/0"]),
        ("nope", []),
    ],
)
def test_cuda_visible_devices_is_read_as_cuda_reads_it(value, gpus):
    assert parse_visible_devices(value) == gpus


def test_visible_gpus_respects_cuda_visible_devices_else_counts_the_machine():
    assert _slots.visible_gpus({"CUDA_VISIBLE_DEVICES": "4,6"}, count=lambda: 8) == ["4", "6"]
    assert _slots.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, count=lambda: 8) == []
    assert _slots.visible_gpus({}, count=lambda: 3) == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("gpus", "per_job", "n_jobs", "slots"),
    [
        (["0", "1", "2", "3"], 1, None, [["0"], ["1"], ["2"], ["3"]]),
        (["0", "1", "2", "3"], 2, None, [["0", "1"], ["2", "3"]]),
        (["0", "1", "2"], 2, None, [["0", "1"]]),  # the odd GPU stays idle
        (["4", "6"], 1, 1, [["4"]]),
        (["0", "1"], 0, None, [[]]),  # CPU jobs: the GPUs hidden, one at a time by default
        (["0", "1"], 0, 3, [[], [], []]),
        ([], 1, None, [None]),  # no GPU: one job, CUDA_VISIBLE_DEVICES left alone
        ([], 0, 2, [[], []]),
    ],
)
def test_slots_are_disjoint_slices_of_the_visible_gpus(gpus, per_job, n_jobs, slots):
    assert plan_slots(gpus, per_job, n_jobs) == slots


def test_the_launch_line_names_each_slots_gpus_not_a_count():
    # ids, not a count: a slot of GPU 0 must not read like "0 GPUs per job"
    assert _slots.describe_slots([["0"]]) == " (GPUs of each slot: 0)"
    assert _slots.describe_slots([["0", "1"], ["2", "3"]]) == " (GPUs of each slot: 0,1 | 2,3)"
    assert _slots.describe_slots([[], []]) == " (GPUs of each slot: - | -)"
    assert _slots.describe_slots([None]) == ""


@pytest.mark.parametrize(
    ("gpus", "per_job", "n_jobs", "names"),
    [
        (["0"], 1, 2, ["hydra.launcher.n_jobs", "at most 1"]),
        (["0", "1", "2"], 2, 2, ["hydra.launcher.n_jobs", "at most 1"]),
        (["0"], 2, None, ["hydra.launcher.gpus_per_job", "at most 1"]),
        ([], 1, 2, ["sees no GPU", "hydra.launcher.gpus_per_job=0"]),
        (["0"], -1, None, ["hydra.launcher.gpus_per_job=-1"]),
        (["0"], 1, 0, ["hydra.launcher.n_jobs=0"]),
    ],
)
def test_slots_that_cannot_be_met_are_refused_naming_the_key_and_the_fix(gpus, per_job, n_jobs, names):
    with pytest.raises(SlotError) as err:
        plan_slots(gpus, per_job, n_jobs)
    for name in names:
        assert name in str(err.value)


def test_a_job_asking_for_more_gpus_than_its_slot_is_refused():
    with pytest.raises(SlotError, match=r"trainer.devices=2.*hydra.launcher.gpus_per_job=2"):
        _slots.check_job_devices("gpu", 2, ["0"], 1)
    with pytest.raises(SlotError, match=r"gpus_per_job=0 runs CPU jobs"):
        _slots.check_job_devices("gpu", 1, [], 0)
    _slots.check_job_devices("gpu", 2, ["0", "1"], 2)
    _slots.check_job_devices("gpu", "auto", ["0"], 1)  # takes what the job sees
    _slots.check_job_devices("cpu", 4, [], 0)
    _slots.check_job_devices("auto", 1, [], 0)  # auto falls back to the CPU
    _slots.check_job_devices("gpu", 8, None, 1)  # no GPUs to hand out: nothing to check against


def test_a_multi_process_job_must_not_restart_the_command_line():
    with pytest.raises(SlotError, match=r"trainer=ddp"):
        _slots.check_job_strategy(2, 1, None)  # Lightning's default DDP re-runs sys.argv: the whole sweep
    with pytest.raises(SlotError, match=r"trainer.strategy=ddp"):
        _slots.check_job_strategy("0,1", 1, "ddp")
    _slots.check_job_strategy(2, 1, {"_target_": "deepprompt.runs.distributed.HydraDDPStrategy"})
    _slots.check_job_strategy(2, 1, "ddp_spawn")
    _slots.check_job_strategy(1, 1, None)


# -- the task function ---------------------------------------------------------------------------------------
def test_the_task_is_sent_by_name_and_found_again_unwrapped():
    task = inspect.unwrap(decorated_task)
    assert task is not decorated_task  # Hydra hands the launcher this one; the module holds the wrapper
    ref = _job.task_reference(task)
    assert ref == (__name__, "decorated_task")
    assert _job.resolve_task(ref) is task


def test_a_task_that_cannot_be_found_by_name_is_refused():
    def local(cfg):
        return None

    with pytest.raises(_job.TaskReferenceError, match="module-level"):
        _job.task_reference(local)


# -- the launcher, in real processes ------------------------------------------------------------------------
def _env(**extra: str) -> dict[str, str]:
    """This checkout's src and tests first (the subprocess runs the code under test), no debug mode."""
    path = os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "HYDRA_FULL_ERROR": "0", **extra}
    env.pop("DEEPPROMPT_DEBUG", None)
    return env


APP = ("-m", "tests.runs.parallel_app", "-m", "hydra/launcher=parallel", "hydra.launcher.preload=[]")


def _app(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The app's sweep; ``.stdout`` holds both streams (Hydra logs to stdout, errors go to stderr)."""
    return subprocess.run(
        [sys.executable, *APP, f"hydra.sweep.dir={tmp_path / 'sweep'}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(**env),
        cwd=tmp_path,
        timeout=300,
    )


def _jobs(tmp_path: Path) -> dict[int, dict]:
    return {int(p.parent.name): json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/job.json")}


def test_each_job_runs_in_its_own_process_on_its_own_gpu_slot(tmp_path):
    proc = _app(
        tmp_path,
        "+value=1,2,3,4",
        CUDA_VISIBLE_DEVICES="5,7",
        PARALLEL_APP_MARKER="from the launcher",
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    jobs = _jobs(tmp_path)
    assert sorted(jobs) == [0, 1, 2, 3]
    assert len({j["pid"] for j in jobs.values()}) == 4  # a new process per job
    assert len({j["ppid"] for j in jobs.values()}) == 1  # all forked from one server
    assert {j["cuda_visible_devices"] for j in jobs.values()} <= {"5", "7"}  # one GPU of the two each
    assert {j["marker"] for j in jobs.values()} == {"from the launcher"}  # the launcher's environment
    # the launcher's start method, not the forkserver: a job's data loader workers fork from the job itself
    assert {j["start_method"] for j in jobs.values()} == {multiprocessing.get_start_method()}
    server = jobs[0]["server"]
    assert server["pid"] == jobs[0]["ppid"] and server["cuda_initialized"] is False
    assert "2 at a time" in proc.stdout  # n_jobs defaults to the GPU slots
    assert f"server (pid {server['pid']}): preloaded" in proc.stdout  # its preload, logged once
    assert proc.stdout.count("): preloaded") == 1


def test_a_failing_job_and_a_killed_one_are_reported_and_the_others_run(tmp_path):
    proc = _app(
        tmp_path, "hydra.launcher.gpus_per_job=0", "hydra.launcher.n_jobs=2", "+action=ok,raise,kill,ok"
    )
    assert proc.returncode == 1
    assert sorted(_jobs(tmp_path)) == [0, 1, 2, 3]  # job 3 started after job 2 died
    assert "job #2 (+action=kill) died (killed by SIGKILL)" in proc.stdout
    # Hydra re-raises the first failed job's exception, as after the basic launcher; with the job's traceback
    assert "ValueError: this job was told to fail" in proc.stdout
    assert "in job #1 (pid" in proc.stdout and "parallel_app.py" in proc.stdout


def test_a_job_that_exits_stops_the_sweep_with_its_status(tmp_path):
    proc = _app(tmp_path, "hydra.launcher.gpus_per_job=0", "+action=exit,ok")
    assert proc.returncode == 3
    assert sorted(_jobs(tmp_path)) == [0]  # n_jobs=1: job 1 never started
    assert "1 job(s) not started" in proc.stdout


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_ends_the_running_jobs_and_the_server(tmp_path, signum, status):
    proc = subprocess.Popen(
        [sys.executable, *APP, f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.launcher.gpus_per_job=0"]
        + ["hydra.launcher.n_jobs=2", "+action=sleep,sleep,sleep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120
        while len(_jobs(tmp_path)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        jobs = _jobs(tmp_path)
        assert len(jobs) == 2, proc.stdout.read() if proc.poll() is not None else "the jobs did not start"
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, output[-3000:]
    assert "1 job(s) not started" in output
    pids = {j["pid"] for j in jobs.values()} | {j["ppid"] for j in jobs.values()}
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if _alive(pid)]  # the jobs and the server are gone


# -- a deepprompt sweep ---------------------------------------------------------------------------------------
def test_a_deepprompt_sweep_forks_its_jobs_from_the_preloaded_server(run_cli, tmp_path):
    proc = run_cli(
        "deepprompt.train",
        "-m",
        "hydra/launcher=parallel",
        *TINY,
        "data=cb",
        "method.prompt.length=2,4",
        "hydra.launcher.n_jobs=2",
        "hydra.launcher.gpus_per_job=0",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "+callbacks.process._target_=tests.runs.helpers.RecordProcess",
        env=_env(),
    )
    runs = [tmp_path / "sweep" / str(i) for i in range(2)]
    records = [metrics(run) for run in runs]
    processes = [json.loads((run / "process.json").read_text()) for run in runs]
    assert [r["status"] for r in records] == ["finished", "finished"]
    assert [r["job_num"] for r in records] == [0, 1]
    assert "method.prompt.length=2" in records[0]["overrides"]  # the returns and folders in job order
    assert "method.prompt.length=4" in records[1]["overrides"]
    assert processes[0]["pid"] != processes[1]["pid"] and processes[0]["ppid"] == processes[1]["ppid"]
    assert {p["cuda_visible_devices"] for p in processes} == {""}  # CPU jobs: the GPUs hidden
    assert not any(p["cuda_initialized"] for p in processes)
    for record in records:
        assert record["startup_from"] == "forkserver"
        # torch, transformers and Lightning were imported by the server before the job existed
        assert {"torch", "transformers", "lightning"} <= set(record["startup_inherited"])
        assert list(record["startup_phases_s"])[0] == "config"  # no interpreter start in a forked job
    assert "| 1 | finished |" in proc.stdout  # the sweep's table, read back by the launching process


PARALLEL_CPU = ("-m", "hydra/launcher=parallel", "hydra.launcher.gpus_per_job=0", *TINY, "data=cb")


@pytest.mark.slow
def test_ddp_jobs_run_from_forked_jobs(run_cli, tmp_path):
    """trainer=ddp_cpu: each forked job starts its second process (HydraDDPStrategy re-runs the job)."""
    run_cli(
        "deepprompt.train",
        *PARALLEL_CPU,
        "trainer=ddp_cpu",
        "trainer.devices=2",
        "trainer.max_epochs=1",
        "method.prompt.length=2,4",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        env=_env(),
    )
    for job in ("0", "1"):
        record = metrics(tmp_path / "sweep" / job)
        assert record["status"] == "finished" and record["steps"] == 3  # 48 examples / (2 processes x 8)
        assert (tmp_path / "sweep" / job / "train_rank1.log").is_file()
    assert not (tmp_path / "sweep" / "2").exists()  # no process ran the sweep again


@pytest.mark.slow
def test_an_optuna_search_runs_its_trials_on_the_launcher(run_cli, tmp_path):
    proc = run_cli(
        "deepprompt.train",
        "hparams_search=ptuning_v2_optuna",
        *PARALLEL_CPU[1:],
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",  # batches of two trials, each batch one launch
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        env=_env(),
    )
    assert [metrics(tmp_path / "sweep" / str(i))["status"] for i in range(4)] == ["finished"] * 4
    assert (tmp_path / "sweep" / "optimization_results.yaml").is_file()
    assert proc.stdout.count("): preloaded") == 1  # one server for both batches


@pytest.mark.slow
def test_sigterm_stops_a_deepprompt_sweep_at_a_batch_boundary(benchmark_dir, tmp_path):
    """The launcher forwards SIGTERM once: each running job stops at its next batch with a checkpoint and
    ``status: interrupted``; the sweep exits 143 and the job that had not started is not started."""
    sweep = tmp_path / "sweep"
    env = _env(
        DEEPPROMPT_DATA_DIR=str(benchmark_dir),
        DEEPPROMPT_OUTPUT_DIR=str(tmp_path / "out"),
        DEEPPROMPT_TEST_SLOW_S="3",
        HF_HUB_OFFLINE="1",
        WANDB_MODE="offline",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepprompt.train", *PARALLEL_CPU, "hydra.launcher.n_jobs=2"]
        + ["method.prompt.length=2,4,8", f"hydra.sweep.dir={sweep}"]
        + ["+callbacks.slow._target_=tests.runs.helpers.SlowSteps"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 180
        logs = [sweep / job / "train.log" for job in ("0", "1")]
        while time.monotonic() < deadline and proc.poll() is None:
            if all(p.is_file() and "start-up:" in p.read_text() for p in logs):
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, output[-3000:]
    for job in ("0", "1"):
        record = metrics(sweep / job)
        assert record["status"] == "interrupted" and record["signal"] == "SIGTERM"
        assert f"hydra.sweep.dir={sweep}" in record["resume_command"]
    assert not (sweep / "2").exists()


def test_the_launching_process_prints_the_sweep_table_without_torch(tmp_path):
    """Under the launcher the jobs ran elsewhere: the table of the sweep must not import torch (seconds)."""
    job = tmp_path / "0"
    job.mkdir()
    (job / "metrics.json").write_text(json.dumps({"status": "finished", "job_num": 0, "wall_time_s": 65}))
    code = (
        "import sys; from pathlib import Path; from deepprompt.runs.closing import sweep_table; "
        f"print(sweep_table(Path({str(tmp_path)!r}))); print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True)
    assert "| 0 | finished |" in out.stdout and "1m05s" in out.stdout
    assert out.stdout.strip().endswith("[]")


def test_no_job_runs_from_the_bare_server_that_replaces_a_dead_one(tmp_path):
    # multiprocessing starts a new server, without the preload, when the old one has ended before a job starts:
    # the job must not run from it (the sweep would go on silently without its preload)
    (tmp_path / "kills_its_importer.py").write_text("import os\nos._exit(7)\n")
    code = """
import time
from hydra_plugins.deepprompt_launcher import _pool
ctx = _pool.start_server(["kills_its_importer"])
time.sleep(3)  # the server has ended in its preload by now
process = ctx.Process(target=print, args=("ran from a bare server",))
try:
    _pool.start_process(process)
except _pool.ServerGone:
    print("server gone", process.pid is None, _pool._server_pid)  # never started; the server forgotten
"""
    env = _env(PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO / "src"), str(REPO)]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "server gone True None" in out.stdout and "ran from a bare server" not in out.stdout


def test_a_server_that_dies_in_its_preload_fails_the_sweep_naming_the_setting(tmp_path):
    (tmp_path / "kills_its_importer.py").write_text("import os\nos._exit(7)\n")
    proc = _app(
        tmp_path,
        "hydra.launcher.gpus_per_job=0",
        "hydra.launcher.preload=[kills_its_importer]",
        "+value=1,2",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO / "src"), str(REPO)]),
    )
    assert proc.returncode == 1
    assert "hydra.launcher.preload" in proc.stdout
    assert not _jobs(tmp_path)
