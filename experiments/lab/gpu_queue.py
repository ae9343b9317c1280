"""Run a plan of training jobs side by side on one GPU machine, within a wall-clock budget.

Each job is one `python3 -m deepprompt.train ...` process (its own run directory under --root). Jobs start in
priority order while a slot is free and their estimated duration still fits the budget; whatever is running at
the budget's end is stopped (its run directory says status: running/failed, the report lists it as such).

Learning-rate grids with follow-up seeds: a job with `pick_lr_from` waits until every job of that grid has
finished, then takes the grid's best learning rate (by the monitored metric's best epoch, seed 1), so the
3-seed comparison runs each method at its own tuned rate within one call, with no hand-picked numbers.

Usage (on the GPU machine, after `source experiments/lab/device_env.sh`):
    python3 experiments/lab/gpu_queue.py --plan call1 --budget 540 --parallel 14 --root "$TMPDIR/dp_out/q"
Plans live in gpu_plans.py; `--dry-run` prints the job list with its commands and estimated steps.

Resumable across calls: the queue's state is its --root. A later call with the same --root (a warm machine keeps
it) skips every job whose metrics.json says finished, clears an unfinished job's folder before running it again,
and starts from the steps/s its earlier calls measured (rates.json). `--skip-done FILE` names jobs (one
`group/name` a line, `#` comments) that finished on a machine since lost: their results are already home.
A job that failed on its own (not stopped at the budget) MAX_TRIES times is not started again; a job that ran out of
GPU memory (its log says OutOfMemoryError: the jobs beside it took the memory) is not counted as failed and goes
back in the queue. `--min-free-gib G`: a job starts only while the GPU has G GiB free (nvidia-smi), at least `--launch-gap-s`
after the one before, so that the memory a new job takes shows before the next one is admitted.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_plans import PLANS, Job  # noqa: E402
from smollm2_plans import PLANS as SMOLLM2_PLANS  # noqa: E402

PLANS = {**PLANS, **SMOLLM2_PLANS}
MAX_TRIES = 2  # a job that failed this often (not stopped at the budget) is given up
OOM = "OutOfMemoryError"  # in a failed job's log: the GPU was full, not the job's own failure


def ran_out_of_memory(log: Path) -> bool:
    """The failed job's log names CUDA running out of memory."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - 20000))
            return OOM.encode() in f.read()
    except OSError:
        return False


def free_gib() -> float | None:
    """Free memory of GPU 0 in GiB (nvidia-smi), None where it cannot be read."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return float(out.split()[0]) / 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


@dataclass
class Running:
    job: Job
    proc: subprocess.Popen
    started: float
    log: Path


@dataclass
class Queue:
    root: Path
    common: list[str]
    pending: list[Job]
    done: dict[str, dict] = field(default_factory=dict)  # job.key -> {"rc", "seconds", "args"}
    running: list[Running] = field(default_factory=list)
    all_jobs: list[Job] = field(default_factory=list)

    def run_dir(self, job: Job) -> Path:
        return self.root / job.group / job.name

    def grid_best_lr(self, job: Job) -> str | None:
        """The best lr of the grid `job.pick_lr_from` names, once all of its jobs have finished; else None."""
        grid = [j for j in self.all_jobs if j.grid == job.pick_lr_from]
        if any(j.key not in self.done for j in grid):
            return None
        scores = []
        for j in grid:
            metrics = self.run_dir(j) / "metrics.json"
            try:
                summary = json.loads(metrics.read_text())
                value = summary["best"][job.monitor]
            except (OSError, KeyError, ValueError, TypeError):
                continue
            scores.append((value, j.lr))
        if not scores:
            return "failed"
        return max(scores, key=lambda s: s[0])[1]  # first-listed (lower) lr wins exact ties

    def ready(self, job: Job) -> Job | None:
        if job.pick_lr_from is None:
            return job
        lr = self.grid_best_lr(job)
        if lr is None:
            return None
        if lr == "failed":
            self.done[job.key] = {"rc": "skipped: every grid run failed", "seconds": 0, "args": job.args}
            return None
        chosen = job.with_lr(lr)
        if finished_before(self.root, chosen):  # an earlier call ran this seed at this rate already
            self.done[job.key] = {"rc": 0, "seconds": 0, "earlier_call": True, "lr": lr}
            return None
        return chosen

    def launch(self, job: Job) -> None:
        run_dir = self.run_dir(job)
        log = self.root / "logs" / job.group / f"{job.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "deepprompt.train", *self.common, *job.args, f"hydra.run.dir={run_dir}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        with log.open("w") as handle:
            handle.write(shlex.join(cmd) + "\n")
            handle.flush()
            proc = subprocess.Popen(
                cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.running.append(Running(job, proc, time.time(), log))


def finished_before(root: Path, job: Job) -> bool:
    """Whether `job` finished in an earlier call (follow-up seeds are checked once their lr is known)."""
    for metrics in (root / job.group).glob(f"{job.name}/metrics.json"):
        try:
            if json.loads(metrics.read_text()).get("status") == "finished":
                return True
        except (OSError, ValueError):
            pass
    return False


def read_done_list(path: str | Path) -> set[str]:
    """Job keys (`group/name`) from a file of one key a line; blank lines and `#` comments are skipped."""
    keys = set()
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            keys.add(line)
    return keys


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _copy_if_missing(src: str, dst: str) -> str:
    return dst if Path(dst).exists() else shutil.copy2(src, dst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plan", required=True, choices=sorted(PLANS))
    parser.add_argument("--budget", type=float, default=540, help="seconds of wall clock for the whole queue")
    parser.add_argument("--parallel", type=int, default=14)
    parser.add_argument(
        "--steps-per-s", type=float, default=20.0, help="per-job rate used to estimate durations"
    )
    parser.add_argument(
        "--startup-s", type=float, default=25.0, help="per-job start-up (imports, tokenising)"
    )
    parser.add_argument("--root", default=os.environ.get("DEEPPROMPT_OUTPUT_DIR", "outputs") + "/queue")
    parser.add_argument(
        "--prior", help="run folders of an earlier call (same layout): finished jobs are not rerun"
    )
    parser.add_argument(
        "--skip-done",
        action="append",
        default=[],
        metavar="FILE",
        help="job keys (group/name, one a line) that finished in an earlier call: not rerun (repeatable)",
    )
    parser.add_argument(
        "--in-order",
        action="store_true",
        help="a job that does not fit the budget holds back every later job (default: smaller ones start)",
    )
    parser.add_argument(
        "--min-free-gib", type=float, default=0.0, help="start a job only while the GPU has this much free"
    )
    parser.add_argument(
        "--launch-gap-s", type=float, default=0.0, help="with --min-free-gib: seconds between two starts"
    )
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("common", nargs="*", help="overrides added to every job (e.g. the MiniLM path)")
    args = parser.parse_args(argv)

    plan = PLANS[args.plan]()
    if args.dry_run:
        for job in plan:
            wait = f" (lr from grid {job.pick_lr_from})" if job.pick_lr_from else ""
            print(
                f"{job.priority:3d} {job.name:60s} ~{job.steps:6d} steps{wait}\n     {shlex.join(job.args)}"
            )
        print(f"{len(plan)} jobs, ~{sum(j.steps for j in plan)} steps")
        return 0

    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    if (
        args.prior
    ):  # an earlier call's runs: their grids decide follow-up rates, their finished jobs count as done
        # never over a run that is already here (a warm machine keeps the last call's full run folders; the
        # prior only holds their slim summaries)
        shutil.copytree(args.prior, root, dirs_exist_ok=True, copy_function=_copy_if_missing)
    skip = set().union(*(read_done_list(f) for f in args.skip_done))
    failures: dict[str, int] = _read_json(root / "failures.json", {})
    given_up = {key for key, n in failures.items() if n >= MAX_TRIES}
    pending = [
        j
        for j in sorted(plan, key=lambda j: j.priority)
        if j.pick_lr_from or not (j.key in skip or j.key in given_up or finished_before(root, j))
    ]
    print(f"{len(plan) - len(pending)} of {len(plan)} jobs finished in an earlier call", flush=True)
    queue = Queue(root=root, common=list(args.common), pending=pending, all_jobs=list(plan))
    for job in plan:
        if job in pending:
            continue
        if job.key in given_up and job.key not in skip and not finished_before(root, job):
            queue.done[job.key] = {"rc": f"given up after {failures[job.key]} failures", "seconds": 0}
        else:
            source = "done list" if job.key in skip and not finished_before(root, job) else "run folder"
            queue.done[job.key] = {"rc": 0, "seconds": 0, "earlier_call": True, "from": source}
    for job in pending:  # an unfinished folder of an earlier call (stopped at its budget, failed): start over
        if not job.pick_lr_from and queue.run_dir(job).exists():
            shutil.rmtree(queue.run_dir(job))
            print(f"cleared the unfinished run folder of {job.key}", flush=True)
    blocked: dict[str, int] = {}  # jobs that did not fit the budget -> their estimated seconds
    t0 = time.time()
    status_every, last_status = 30.0, 0.0

    # measured steps/s of finished jobs (this call's and earlier calls'), which replace --steps-per-s once there
    # are 3
    rates: list[float] = _read_json(root / "rates.json", [])

    def estimate(job: Job) -> float:
        rate = sorted(rates)[len(rates) // 4] if len(rates) >= 3 else args.steps_per_s  # a slow quartile
        return args.startup_s + job.steps / rate

    last_launch = -float("inf")

    def room(now: float) -> bool:
        """--min-free-gib: the GPU has the room, and the last start had time to take its memory."""
        if now - last_launch < args.launch_gap_s:
            return False
        free = free_gib()
        return free is None or free >= args.min_free_gib

    while queue.pending or queue.running:
        now = time.time() - t0
        for r in list(queue.running):
            rc = r.proc.poll()
            if rc is not None:
                queue.running.remove(r)
                seconds = time.time() - r.started
                queue.done[r.job.key] = {"rc": rc, "seconds": round(seconds, 1), "args": r.job.args}
                if rc == 0 and seconds > args.startup_s + 5:
                    rates.append(r.job.steps / (seconds - args.startup_s))
                    (root / "rates.json").write_text(json.dumps(rates))
                elif rc != 0 and ran_out_of_memory(r.log):  # back in line, from a clean folder
                    del queue.done[r.job.key]
                    shutil.rmtree(queue.run_dir(r.job), ignore_errors=True)
                    queue.pending.append(r.job)
                    queue.pending.sort(key=lambda j: j.priority)
                    print(f"[{now:6.0f}s] {r.job.name} ran out of GPU memory: back in the queue", flush=True)
                elif rc != 0:
                    failures[r.job.key] = failures.get(r.job.key, 0) + 1
                    (root / "failures.json").write_text(json.dumps(failures, indent=1))
                print(
                    f"[{now:6.0f}s] done {r.job.name} rc={rc} in {time.time() - r.started:.0f}s", flush=True
                )
        if now >= args.budget:
            for r in queue.running:
                os.killpg(r.proc.pid, signal.SIGTERM)
                queue.done[r.job.key] = {
                    "rc": "stopped at the budget",
                    "seconds": round(time.time() - r.started, 1),
                }
                print(f"[{now:6.0f}s] stopped {r.job.name} (budget)", flush=True)
            time.sleep(5)
            for r in queue.running:
                if r.proc.poll() is None:
                    os.killpg(r.proc.pid, signal.SIGKILL)
            queue.running.clear()
            break
        for job in list(queue.pending):
            if len(queue.running) >= args.parallel:
                break
            if args.min_free_gib and not room(now):
                break
            if now + estimate(job) > args.budget:
                blocked.setdefault(job.key, round(estimate(job)))
                if args.in_order:
                    break  # nothing later starts before it
                continue  # does not fit any more; smaller jobs further down may
            ready = queue.ready(job)
            if job.key in queue.done:  # skipped while resolving its lr
                queue.pending.remove(job)
                continue
            if ready is None:
                continue
            queue.pending.remove(job)
            queue.launch(ready)
            last_launch = now
            print(f"[{now:6.0f}s] start {ready.name} (~{estimate(ready):.0f}s)", flush=True)
        if not queue.running and all(
            queue.ready(j) is None or now + estimate(j) > args.budget for j in queue.pending
        ):
            break  # nothing runs and nothing left can start
        if now - last_status >= status_every:
            last_status = now
            print(
                f"[{now:6.0f}s] running {len(queue.running)}, pending {len(queue.pending)}, done {len(queue.done)}",
                flush=True,
            )
        time.sleep(1.0)

    for job in queue.pending:
        queue.done.setdefault(job.key, {"rc": "not started (budget)", "seconds": 0, "args": job.args})
    left = sum(1 for key, d in queue.done.items() if d["rc"] != 0 and failures.get(key, 0) < MAX_TRIES)
    summary = {
        "plan": args.plan,
        "left": left,  # jobs a later call would still run
        # the first job that never fitted: a call whose queue budget is below its estimate cannot start it
        "next": next(
            ({"job": k, "estimate_s": v} for k, v in blocked.items() if queue.done.get(k, {}).get("rc") != 0),
            None,
        ),
        "budget_s": args.budget,
        "parallel": args.parallel,
        "wall_s": round(time.time() - t0, 1),
        "common": args.common,
        "jobs": queue.done,
    }
    (root / "queue.json").write_text(json.dumps(summary, indent=1))
    finished = sum(1 for d in queue.done.values() if d["rc"] == 0)
    print(
        f"queue {args.plan}: {finished}/{len(queue.done)} jobs finished in {time.time() - t0:.0f}s, {left} left"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
