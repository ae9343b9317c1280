"""Build, warm up and time the cases of one group (`deepprompt-bench`'s protocol, see `deepprompt.bench.cli`)."""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import dataclass

import torch

from deepprompt.bench import flops as F
from deepprompt.bench import profile as P
from deepprompt.bench import timing
from deepprompt.bench.inputs import autocast, make_inputs
from deepprompt.bench.models import build_inference, build_model, prompted_layers
from deepprompt.bench.plan import Case, case_id, wants_profile
from deepprompt.bench.probes import attention_signature, compile_counters, compile_diff, sdpa_probe
from deepprompt.bench.shapes import backbone_config, max_input_positions


def infer_step(model, batch, args):
    """The inference step of every inference row (bare and prompted alike): eval-mode forward, inference mode,
    the run's autocast; returns the logits."""

    def step():
        with torch.inference_mode(), autocast(args):
            return model(**batch).logits

    return step


@dataclass
class Built:
    """A case ready to time: its timer (which holds the model), and what was measured while building it."""

    case: Case
    timer: timing.StepTimer
    info: dict


def build_case(case: Case, args) -> Built:
    """Build one case on a fresh backbone, run its warm-up steps and read its peak memory; raises on failure.

    Peak memory is net of what was allocated before the build (the group's other models stay resident).
    """
    row = case.row
    config = backbone_config(case.shape, row.backbone_overrides)
    if row.prompted and case.prompt <= 0:
        raise ValueError(f"{case.method} needs a prompt length > 0")
    if case.seq > max_input_positions(config):
        raise ValueError(f"T={case.seq} exceeds the {max_input_positions(config)} positions of {case.shape}")
    timing.reset_peak_memory(args.device)
    baseline = timing.allocated_gib(args.device)
    built_at = time.perf_counter()
    compiled = row.compile_mode is not None
    before = compile_counters() if compiled else None
    batch, labels = make_inputs(config, args, case.seq, case.pad)
    info: dict = {}
    # a probe would recompile a compiled model, and run a graphed one's captured step
    probe = timing.is_cuda(args.device) and not args.no_probe and not compiled and not row.graphed
    backend = getattr(args, "compile_backend", "inductor")
    if case.mode == "train":
        model, params = build_model(
            row, case.shape, case.prompt, args.device, args.seed, args.reparam, backend
        )
        cuda = timing.is_cuda(args.device)
        optimizer = torch.optim.AdamW(params, lr=args.lr, fused=True if cuda else None)
        new_replay = row.compile_mode == "reduce-overhead"
        graphs = model.graphs

        def step():  # a training step as `TaskModule` runs it, the optimizer's included
            if new_replay:  # a new iteration: the previous replay's outputs may be overwritten
                torch.compiler.cudagraph_mark_step_begin()
            if graphs is not None:
                graphs.new_step()
            with autocast(args):
                loss = model(**batch, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        timer = timing.StepTimer(step, args.device, sync_each=False)
        timer.warmup(args.warmup)
        info["build_s"] = time.perf_counter() - built_at  # model, inputs and warm-up steps (compile included)
        if compiled:
            info["compile"] = compile_diff(before, compile_counters()) | {"backend": backend}
        if graphs is not None:
            info["cuda_graphs"] = graphs.counts()
        layers = prompted_layers(model)
        rank = row.method_config(1).r if row.method == "lora" else 8
        info |= {
            "train_peak_gib": timing.peak_memory_gib(args.device, baseline),
            "train_flops": F.train_step_flops(
                config, case.method, args.batch, case.seq, case.prompt, layers, rank, backward_layers=layers
            ),
            "trainable_params": sum(p.numel() for p in params),
        }
    else:
        model = build_inference(row, case.shape, case.prompt, args.device, args.seed, args.reparam)
        step = infer_step(model, batch, args)
        timer = timing.StepTimer(step, args.device, sync_each=True)
        timer.warmup(args.warmup)
        info["build_s"] = time.perf_counter() - built_at
        info |= {
            "infer_peak_gib": timing.peak_memory_gib(args.device, baseline),
            "infer_flops": F.inference_flops(config, args.batch, case.seq, case.prompt),
            "attention": attention_signature(step),
        }
    if probe:
        info["sdpa"] = sdpa_probe(model, batch, args)
    return Built(case, timer, info)


def case_result(built: Built, summary: dict, args) -> dict:
    """The row fields of a timed case: median (headline) and the full summary."""
    out = dict(built.info)
    ms = summary["median_ms"]
    if built.case.mode == "train":
        out |= {
            "train_ms": ms,
            "train_timing": summary,
            "samples_per_s": args.batch / (ms / 1e3),
            "train_tflops_per_s": out["train_flops"] / (ms / 1e3) / 1e12,
        }
    else:
        out |= {"infer_ms": ms, "infer_timing": summary}
    return out


def run_group(cases: list[Case], args) -> dict[Case, dict | Exception]:
    """Build every case of a group, time them in interleaved rounds; a case's result or the error it raised."""
    results: dict[Case, dict | Exception] = {}
    built: list[Built] = []
    for case in cases:
        try:
            built.append(build_case(case, args))
        except Exception as err:  # noqa: BLE001 - any failure is an error row
            results[case] = err
            cleanup(args.device)
    if built:
        try:
            summaries = timing.interleave([b.timer for b in built], args.steps, args.rounds)
        except Exception as err:  # noqa: BLE001
            for b in built:
                results[b.case] = err
        else:
            for b, summary in zip(built, summaries, strict=True):
                results[b.case] = summary if isinstance(summary, Exception) else case_result(b, summary, args)
            for b in built:
                result = results[b.case]
                if wants_profile(b.case, args) and isinstance(result, dict):
                    result["profile"] = profile_built(b, result, args)
    del built
    cleanup(args.device)
    return results


def run_case(case: Case, args) -> dict:
    """Measure one case alone (a group of one); raises on failure."""
    result = run_group([case], args)[case]
    if isinstance(result, Exception):
        raise result
    return result


def profile_built(b: Built, result: dict, args) -> dict:
    """`deepprompt.bench.profile` of a built, timed case; an error becomes ``{"error": ...}``."""
    trace = None
    if args.profile_trace:
        args.profile_trace.mkdir(parents=True, exist_ok=True)
        trace = str(args.profile_trace / f"{case_id(b.case).replace(':', '_')}.json.gz")
    try:
        out = P.profile_step(b.timer.step, args.device, args.profile_steps, result.get("train_ms"), trace)
    except Exception as err:  # noqa: BLE001 - a failed profile must not lose the timed row
        out = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
    print(P.format_profile(case_id(b.case), out), file=sys.stderr)
    return out


def cleanup(device) -> None:
    gc.collect()
    if timing.is_cuda(device):
        torch.cuda.empty_cache()
