"""Write docs/configuration.md from conf/ and the typed method schemas: `python docs/make_configuration.py`.

Every config group is a folder of conf/, every option a YAML file in it; its leading comment says what it is and
its body (keys, defaults, comments) is shown as it is. Method options are also listed from their dataclass schema,
the keys a run accepts under `method.` (anything else is refused with the valid keys).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
OUT = ROOT / "docs" / "configuration.md"
sys.path.insert(0, str(ROOT / "src"))

GROUPS = {
    "data": "the task: its files, tokenizer, batch sizes and task-specific options (`data=<option>`)",
    "backbone": "the pretrained model the prompts attach to (`backbone=<option>`)",
    "method": "the tuning method and its hyperparameters (`method=<option>`, keys under `method.`)",
    "trainer": "Lightning `Trainer` settings (`trainer=cpu|gpu|ddp|...`)",
    "callbacks": "checkpoints, prompt export, guards (`callbacks=default|none`, or `callbacks.<name>.<key>=`)",
    "logger": "where metrics go (`logger=csv|tensorboard|wandb|many`)",
    "debug": "short runs for checking a set-up (`debug=limit|fast_dev_run|overfit`)",
    "extras": "run extras: config printing, what metrics.json records",
    "paths": "where data and outputs live",
    "hydra": "Hydra's run/sweep folders and launchers (`hydra/launcher=parallel|local|slurm`)",
    "hparams_search": "Optuna searches (`hparams_search=<option> -m`)",
    "preset": "a named budget for the main job (`preset=cpu_quick`: the CPU quick run of `make train`)",
    "experiment": "one-word recipes (`experiment=<option>`): a `# @package _global_` file of overrides",
}


def split_comment(text: str) -> tuple[str, str]:
    """(leading comment as one line, the rest of the file)."""
    lines = text.splitlines()
    head = []
    while lines and lines[0].startswith("#"):
        head.append(lines.pop(0).lstrip("# ").strip())
    head = [h for h in head if not h.startswith("@package")]
    return " ".join(head), "\n".join(lines).strip()


def first_sentence(text: str) -> str:
    return text.split(". ")[0].split(" deepprompt-train ")[0].rstrip(".:") + "."


def option_files(group: Path) -> list[Path]:
    return sorted(group.rglob("*.yaml"), key=lambda p: p.relative_to(group).as_posix())


def method_schemas() -> list[str]:
    try:
        from deepprompt.methods import base

        names = base.method_names()
    except Exception as err:  # the docs still build without the package
        return [f"(method schemas not available: {err})"]
    lines = ["### Method schemas (typed: an unknown key or a bad value fails before training)", ""]
    for name in names:
        cls = base.method_schema(name)
        lines += [f"`method={name}` ({cls.__name__}):", "", "| key | type | default |", "|---|---|---|"]
        for field in dataclasses.fields(cls):
            if field.default is not dataclasses.MISSING:
                default = repr(field.default)
            elif field.default_factory is not dataclasses.MISSING:
                value = field.default_factory()
                default = "(section)" if dataclasses.is_dataclass(value) else repr(value)
            else:
                default = "required"
            kind = getattr(field.type, "__name__", str(field.type))
            lines.append(f"| `{field.name}` | `{kind}` | `{default}` |")
        lines.append("")
    return lines


def launchers_in_code() -> list[str]:
    """Launchers whose settings are a dataclass in deepprompt's Hydra plugin (``src/hydra_plugins``), not a file of
    conf/: their source, comments included."""
    import inspect

    try:
        from hydra_plugins.deepprompt_launcher._config import DEFAULT_PRELOAD, ParallelLauncherConf
    except Exception as err:  # the docs still build without Hydra
        return [f"(launcher settings not available: {err})", ""]
    source = inspect.getsource(ParallelLauncherConf).strip()
    preload = ", ".join(f"`{name}`" for name in DEFAULT_PRELOAD)
    return [
        "### `hydra/launcher=parallel`",
        "",
        "```python",
        source,
        "```",
        "",
        f"`preload` defaults to {preload}.",
        "",
    ]


def render() -> str:
    """The whole reference, as docs/configuration.md holds it (tests/cli/test_configuration_doc.py compares)."""
    out = [
        "# Configuration reference",
        "",
        "Generated from `conf/` and the method schemas by `python docs/make_configuration.py`; do not edit by hand.",
        "Every key can be set on the command line (`deepprompt-train data.batch_size=16`); a group is chosen by its",
        "option name (`deepprompt-train data=rte method=lora`). `deepprompt-train --cfg job` prints the composed",
        "config of a command line without running it.",
        "",
        "## Top level (`conf/train.yaml`)",
        "",
        "The defaults list is also the override order: later entries win.",
        "",
        "```yaml",
        (CONF / "train.yaml").read_text().strip(),
        "```",
        "",
    ]
    for command, root, more in (
        ("deepprompt-eval", "eval.yaml", ""),
        (
            "deepprompt-predict",
            "predict.yaml",
            "What the options do: [serving.md](serving.md#deepprompt-predict).",
        ),
        ("deepprompt-serve", "serve.yaml", "What the options do: [serving.md](serving.md#deepprompt-serve)."),
    ):
        if (CONF / root).is_file():
            out += [f"## `{command}` (`conf/{root}`)", ""] + ([more, ""] if more else [])
            out += ["```yaml", (CONF / root).read_text().strip(), "```", ""]
    groups = [g for g in GROUPS if (CONF / g).is_dir()]
    groups += sorted(
        p.name for p in CONF.iterdir() if p.is_dir() and p.name not in GROUPS and p.name != "local"
    )
    out += ["## Groups", "", "| group | options | what it selects |", "|---|---|---|"]
    for name in groups:
        options = ", ".join(
            f"`{p.relative_to(CONF / name).with_suffix('').as_posix()}`" for p in option_files(CONF / name)
        )
        if name == "hydra":
            options += ", `launcher/parallel` (in code)"
        out.append(f"| [`{name}`](#{name}) | {options} | {GROUPS.get(name, '')} |")
    out.append("")
    for name in groups:
        out += [f"## {name}", "", GROUPS.get(name, "").capitalize() + ".", ""]
        files = option_files(CONF / name)
        if name == "experiment":
            out += ["| option | what it runs |", "|---|---|"]
            out += [f"| `{p.stem}` | {first_sentence(split_comment(p.read_text())[0])} |" for p in files]
            out.append("")
            continue
        for path in files:
            comment, body = split_comment(path.read_text())
            option = path.relative_to(CONF / name).with_suffix("").as_posix()
            out += [f"### `{name}={option}`", ""]
            if comment:
                out += [first_sentence(comment), ""]
            if body:
                out += ["```yaml", body, "```", ""]
        if name == "method":
            out += method_schemas()
        if name == "hydra":
            out += launchers_in_code()
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    text = render()
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({text.count(chr(10))} lines)")


if __name__ == "__main__":
    main()
