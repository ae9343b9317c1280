"""``deepprompt-compress run_dir=... ratios=[1.0,0.75,0.5,0.25,0.125]``: SVD-compress a trained run's prompts.

Loads the run as ``deepprompt-eval`` does (its config, seed and data module; the prompt export
``prompts/best`` or a Lightning checkpoint, ``checkpoint=best|last|<path>``), then for each ratio replaces every
layer's prompt key/value matrices by their rank-r reconstruction (`deepprompt.prompts.compression`), runs the
validation split and writes ``compression.json`` and ``compression.md`` (ratio, ranks, stored floats, score)
into the run folder (or ``out=<dir>``). Options are ``key=value`` pairs (OmegaConf dotlist syntax).
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

from omegaconf import OmegaConf

from deepprompt.errors import ConfigError, DeepPromptError
from deepprompt.runs.guard import debug_enabled
from deepprompt.runs.preflight import check_run_resources
from deepprompt.runs.restore import load_run_config, load_trained, resolve_checkpoint
from deepprompt.utils.atomic import atomic_write, atomic_write_json

log = logging.getLogger("deepprompt.compress")
DEFAULT_RATIOS = (1.0, 0.75, 0.5, 0.25, 0.125)


def _load_trained(run_dir: Path, checkpoint: str, override=None):
    cfg = load_run_config(run_dir, override)  # the run's data folder and backbone (.deepprompt/resolved.yaml)
    check_run_resources(cfg)
    source = resolve_checkpoint(run_dir, checkpoint)
    import lightning as L

    from deepprompt.prompts import DeepPromptModel
    from deepprompt.runs.build import build_data_and_module

    L.seed_everything(cfg.seed, workers=True)  # as deepprompt-eval: rebuilds a random backbone bit for bit
    datamodule, module = build_data_and_module(cfg)
    if not isinstance(getattr(module, "encoder", None), DeepPromptModel):
        raise ConfigError(f"{run_dir} is not a P-Tuning v2 run: only deep prompts can be compressed")
    load_trained(module, source)
    module.encoder.fold()
    return cfg, datamodule, module, source


def compress_run(
    run_dir: str | Path,
    ratios=DEFAULT_RATIOS,
    checkpoint: str = "best",
    out: str | Path | None = None,
    override=None,
) -> list[dict]:
    import lightning as L

    from deepprompt.prompts.compression import compress_layer_tensors

    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir
    cfg, datamodule, module, source = _load_trained(run_dir, checkpoint, override)
    encoder = module.encoder.prompt_encoder
    original = {layer: t.detach().clone() for layer, t in encoder.layer_tensors().items()}
    score_key = f"val/{next(iter(module.val_best))}" if hasattr(module, "val_best") else "val/loss"
    trainer = L.Trainer(
        accelerator=cfg.trainer.get("accelerator", "auto"),
        devices=1,
        logger=False,
        precision=cfg.trainer.get("precision", "32-true"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    rows = []
    for ratio in ratios:
        compressed, stats = compress_layer_tensors(original, float(ratio), encoder.geometry.kv_width)
        encoder.set_layer_tensors(compressed)
        metrics = {
            k: float(v) for k, v in trainer.validate(module, datamodule=datamodule, verbose=False)[0].items()
        }
        rows.append(
            {**stats.to_dict(), "score_name": score_key, "score": metrics.get(score_key), "metrics": metrics}
        )
        log.info(
            "ratio %s: stored %d floats, %s %.4f", ratio, stats.stored_floats, score_key, rows[-1]["score"]
        )
    encoder.set_layer_tensors(original)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out / "compression.json", {"run_dir": str(run_dir), "checkpoint": str(source), "rows": rows}
    )
    markdown = to_markdown(rows)
    atomic_write(out / "compression.md", lambda p: p.write_text(markdown))
    return rows


def to_markdown(rows: list[dict]) -> str:
    name = rows[0]["score_name"] if rows else "score"
    lines = [
        f"| ratio | ranks | stored floats | dense floats | rel. error | {name} |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        ranks = ",".join(str(v) for v in r["ranks"].values())
        score = (
            "-"
            if r["score"] is None
            else f"{100 * r['score']:.2f}"
            if name != "val/loss"
            else f"{r['score']:.4f}"
        )
        lines.append(
            f"| {r['ratio']:g} | {ranks} | {r['stored_floats']} | {r['dense_floats']} | {r['relative_error']:.4f} | {score} |"
        )
    return "\n".join(lines) + "\n"


def check_ratio(ratio) -> float:
    """A compression ratio in (0, 1] from the command line, or ConfigError."""
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 < value <= 1.0:
        raise ConfigError(
            f"ratios: {ratio!r} is not a compression ratio in (0, 1], e.g. ratios=[1.0,0.5,0.25]"
        )
    return value


def main(argv: list[str] | None = None) -> None:
    args = OmegaConf.from_dotlist(list(sys.argv[1:] if argv is None else argv))
    if "run_dir" not in args:
        raise SystemExit(
            "usage: deepprompt-compress run_dir=<run folder> [ratios=[1.0,0.5]] [checkpoint=best] [out=<dir>]"
        )
    ratios = args.get("ratios", list(DEFAULT_RATIOS))
    ratios = [ratios] if isinstance(ratios, float | int | str) else list(ratios)
    try:
        ratios = [check_ratio(r) for r in ratios]
        rows = compress_run(
            args.run_dir, ratios, str(args.get("checkpoint", "best")), args.get("out"), args.get("override")
        )
    except DeepPromptError as err:  # one clear line, as deepprompt-eval (DEEPPROMPT_DEBUG=1: traceback)
        if debug_enabled():
            raise
        print(f"deepprompt-compress: error: {err}", file=sys.stderr)
        sys.exit(1)
    print(to_markdown(rows), end="")


if __name__ == "__main__":
    main()
