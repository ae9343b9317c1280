"""What a benchmark run measures: presets (``presets.yaml``), sub-grids, cases and their groups."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields, replace
from importlib import resources

import yaml

from deepprompt.bench.models import Row
from deepprompt.bench.shapes import SHAPES


@dataclass(frozen=True)
class Case:
    method: str  # the row name, METHOD[+VARIANT...]
    shape: str
    seq: int
    prompt: int
    mode: str  # "train" or "infer"
    pad: float = 0.0
    group: tuple = field(default=(), compare=False)  # cases of one group are timed in interleaved rounds

    @property
    def key(self) -> tuple[str, str, int, int, float]:
        return (self.method, self.shape, self.seq, self.prompt, self.pad)

    @property
    def row(self) -> Row:
        return Row.parse(self.method)


@dataclass
class Grid:
    """One sub-grid: every row x shape x T (x m for prompted rows), one padding fraction."""

    shapes: list[str]
    seq: list[int]
    rows: list[str]
    prompt: list[int] = field(default_factory=lambda: [16, 64, 128])
    infer_prompt: int = 0  # prompt tokens of the P-Tuning v2 rows' inference cases (0: none)
    pad: float = 0.0


@functools.cache
def presets() -> dict[str, dict]:
    """``presets.yaml``: name -> {"about", "defaults", "grids": [Grid, ...]}; every row and shape checked."""
    text = resources.files("deepprompt.bench").joinpath("presets.yaml").read_text()
    out = {}
    known = {f.name for f in fields(Grid)}
    for name, preset in yaml.safe_load(text)["presets"].items():
        grids = []
        for i, grid in enumerate(preset["grids"]):
            unknown = set(grid) - known
            if unknown:
                raise ValueError(
                    f"presets.yaml: {name}.grids[{i}]: unknown keys {sorted(unknown)}; known: {sorted(known)}"
                )
            grids.append(Grid(**grid))
        out[name] = {
            "about": preset.get("about", ""),
            "defaults": dict(preset.get("defaults", {})),
            "grids": grids,
        }
        check(out[name]["grids"], f"preset {name}")
    return out


def check(grids: list[Grid], where: str) -> None:
    """Raise ``ValueError`` naming the first unknown row or shape (and what is known)."""
    for grid in grids:
        for name in grid.rows:
            try:
                Row.parse(name)
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None
        for shape in grid.shapes:
            if shape not in SHAPES:
                raise ValueError(f"{where}: unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def grids(args) -> list[Grid]:
    if args.preset:
        return presets()[args.preset]["grids"]
    return [Grid(args.shapes, args.seq, args.methods, args.prompt, args.infer_prompt, args.pad)]


def case_id(case) -> str:
    """``ROW:SHAPE:T:M`` (``:PAD`` when padded), the name ``--profile-cases`` takes."""
    base = f"{case.method}:{case.shape}:{case.seq}:{case.prompt}"
    return f"{base}:{case.pad:g}" if case.pad else base


def wants_profile(case, args) -> bool:
    if not getattr(args, "profile", False) or case.mode != "train":
        return False
    chosen = getattr(args, "profile_cases", None)
    return not chosen or case_id(case) in chosen


def plan_grid(grid: Grid, dtype: str) -> list[Case]:
    """The cases of one sub-grid, in order; bf16-weight rows only when ``dtype`` is bf16."""
    cases = []
    rows = [row for row in map(Row.parse, grid.rows) if dtype == "bf16" or not row.bf16]
    for shape in grid.shapes:
        for seq in grid.seq:
            for row in rows:
                if row.inference_only:
                    cases.append(Case(row.name, shape, seq, 0, "infer", grid.pad))
                elif row.prompted:
                    cases += [Case(row.name, shape, seq, m, "train", grid.pad) for m in grid.prompt]
                else:
                    cases.append(Case(row.name, shape, seq, 0, "train", grid.pad))
            if grid.infer_prompt > 0:  # compiled and nodrop rows: training rows only
                cases += [
                    Case(row.name, shape, seq, grid.infer_prompt, "infer", grid.pad)
                    for row in rows
                    if row.infers and row.compile_mode is None and "nodrop" not in row.variants
                ]
    return cases


def plan(args) -> list[Case]:
    """Every case once, in the order of the (sub-)grids; ``group`` = (shape, T, padding)."""
    cases, seen = [], set()
    for grid in grids(args):
        for case in plan_grid(grid, args.dtype):
            if (case.key, case.mode) not in seen:
                seen.add((case.key, case.mode))
                cases.append(replace(case, group=(case.shape, case.seq, case.pad)))
    return cases


def plan_groups(cases: list[Case], size: int = 32) -> list[list[Case]]:
    """The cases by group, groups in order of first appearance, each split into chunks of at most ``size``.

    A group's cases are resident together and timed in interleaved rounds (`timing.interleave`), so the
    comparisons that matter (ours vs prefix, before/after, prompted vs bare inference) share the same moments.
    """
    by_group: dict[tuple, list[Case]] = {}
    for case in cases:
        by_group.setdefault(case.group, []).append(case)
    size = max(1, size)
    return [members[i : i + size] for members in by_group.values() for i in range(0, len(members), size)]
