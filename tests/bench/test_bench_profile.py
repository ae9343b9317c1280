"""The speed switches on CPU: the profile breakdown, the nodrop/compile variants against the plain path, and the
``speed_switches_profile`` plan (docs/performance.md)."""

from __future__ import annotations

import json

import pytest
import torch

from deepprompt.bench import cli, models, plan, probes
from deepprompt.bench import profile as P
from deepprompt.methods.base import compile_frozen

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128>>", "attention"),
        ("fmha_cutlassB_bf16_aligned_64x64_k64_sm80", "attention"),
        ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16", "attention"),
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "gemm"),
        ("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_TNT", "gemm"),
        ("void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm>", "gemm"),
        ("triton_poi_fused__to_copy_add_native_dropout_3", "triton"),
        ("triton_tem_fused_mm_0", "gemm"),
        ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float, float>", "layernorm"),
        (
            "void at::native::(anonymous namespace)::fused_dropout_kernel_vec<float, float, unsigned int>",
            "dropout",
        ),
        (
            "void at::native::vectorized_elementwise_kernel<4, at::native::bfloat16_copy_kernel_cuda>",
            "copy_cast",
        ),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>", "elementwise"),
        ("void at::native::(anonymous namespace)::CatArrayBatchedCopy<float>", "elementwise"),
        ("void at::native::multi_tensor_apply_kernel<FusedAdamMathFunctor<float, 4>>", "optimizer"),
        ("void (anonymous namespace)::cunn_SoftMaxForward<4, float>", "softmax_loss"),
        ("Memcpy HtoD (Pageable -> Device)", "memcpy"),
        ("aten::scaled_dot_product_attention", "attention"),
        ("aten::linear", "gemm"),
        ("aten::native_layer_norm", "layernorm"),
        ("aten::native_dropout", "dropout"),
        ("aten::_to_copy", "copy_cast"),
        ("aten::add", "elementwise"),
        ("cudaLaunchKernel", "other"),
    ],
)
def test_classify(name, category):
    assert P.classify(name) == category


def test_union_counts_overlaps_once():
    assert P.union_us([(0, 10), (5, 15), (20, 25), (21, 22)]) == 20
    assert P.union_us([]) == 0


def test_summarize_synthetic_trace():
    # two steps; per step: a 6 us gemm, a 2 us flash kernel, a 1 us cast, 1 us of memcpy; 3 launch calls
    kernels = []
    for step in range(2):
        t = 100.0 * step
        kernels += [
            P.Kernel("sm90_xmma_gemm_bf16", t, 6),
            P.Kernel("flash_fwd_kernel", t + 6, 2),
            P.Kernel("bfloat16_copy_kernel_cuda", t + 8, 1),
            P.Kernel("Memcpy HtoD", t + 9, 1),
        ]
    ops = [
        P.Op("aten::linear", 2, self_cpu_us=10, cpu_us=30, self_gpu_us=0, gpu_us=12),
        P.Op("aten::addmm", 2, self_cpu_us=20, cpu_us=20, self_gpu_us=12, gpu_us=12),
        P.Op("aten::_to_copy", 2, self_cpu_us=4, cpu_us=8, self_gpu_us=0, gpu_us=2),
        P.Op("aten::copy_", 2, self_cpu_us=4, cpu_us=4, self_gpu_us=2, gpu_us=2),
        P.Op("cudaLaunchKernel", 6, self_cpu_us=30, cpu_us=30),
        P.Op("deepprompt_step_0", 1, self_cpu_us=1, cpu_us=100),
    ]
    out = P.summarize(kernels, ops, steps=2, wall_ms=0.2, cuda=True)
    assert out["gpu_busy_ms"] == pytest.approx(0.010)
    assert out["kernels_per_step"] == 3 and out["memcpy_per_step"] == 1
    assert out["launch_calls_per_step"] == 3 and out["launch_api_ms"] == pytest.approx(0.015)
    assert out["cpu_ops_per_step"] == 4
    cats = out["categories"]
    assert list(cats)[0] == "gemm" and cats["gemm"]["gpu_share"] == pytest.approx(0.6)
    assert cats["attention"]["gpu_ms"] == pytest.approx(0.002)
    assert cats["copy_cast"]["cpu_self_ms"] == pytest.approx(0.004)
    assert out["casts"]["calls_per_step"] == 1 and out["casts"]["gpu_share"] == pytest.approx(0.1)
    assert out["top_kernels_gpu"][0]["category"] == "gemm"
    assert out["top_ops_gpu"][0]["name"] == "aten::addmm"  # by self GPU time
    assert all(not o["name"].startswith("deepprompt_") for o in out["top_ops_cpu"])
    # on the same window without CUDA the GPU fields are empty
    cpu = P.summarize([], ops, steps=2, wall_ms=0.2, cuda=False)
    assert cpu["gpu_busy_ms"] is None and cpu["kernels_per_step"] is None and cpu["top_ops_gpu"] == []


def test_verdict():
    assert P.verdict(9.5, 10.0, 4.0, 10.0)["bound"].startswith("kernel-bound")
    assert P.verdict(7.0, 10.0, 9.0, 10.0)["bound"].startswith("mixed")
    host = P.verdict(3.0, 10.0, 9.8, 10.0)
    assert host["bound"].startswith("host-bound") and host["gpu_idle_ms"] == pytest.approx(7.0)
    assert P.verdict(None, 10.0, 1.0, 2.0)["bound"].startswith("unknown")


def _plain_and(method, seed=0):
    """(plain ptuning_v2+bf16, ``method``) on identical tiny-RoBERTa weights, train mode."""
    out = []
    for name in ("ptuning_v2+bf16", method):
        model, params = models.build_model(name, "tiny-roberta", 4, seed=seed, compile_backend="aot_eager")
        out.append((model.train(), params))
    return out


def _loss_and_grads(model, params, ids, labels):
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in params]


def test_nodrop_turns_off_backbone_dropout_only():
    (plain, _), (nodrop, _) = _plain_and("ptuning_v2+bf16+nodrop")
    dropouts = [m for m in nodrop.backbone.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(m.p == 0 for m in dropouts)
    assert nodrop.dropout.p == plain.dropout.p > 0  # the head keeps its own
    ids, _ = torch.randint(3, 128, (2, 8)), None
    for model, expected in ((plain, 0.1), (nodrop, 0.0)):
        with probes.record_sdpa_calls() as calls, torch.autocast("cpu", dtype=torch.bfloat16):
            model(input_ids=ids)
        assert {c["dropout_p"] for c in calls} == {expected}
    # in eval mode (no dropout anywhere) the two are the same model
    plain.eval(), nodrop.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(plain(input_ids=ids).logits, nodrop(input_ids=ids).logits)


@pytest.mark.parametrize("method", ["ptuning_v2+bf16+compile+nodrop", "ptuning_v2+bf16+compile"])
def test_compiled_backbone_matches_plain_path(method):
    """aot_eager (dynamo + AOT autograd, no code generation): the compiled backbone gives the eager loss and
    prompt gradients (to bf16 rounding); with dropout on the RNG streams differ, so that variant is compared with
    every dropout at p = 0."""
    (plain, p_plain), (compiled, p_comp) = _plain_and(method)
    if method == "ptuning_v2+bf16+compile+nodrop":
        models.disable_dropout(plain.backbone)
    else:
        for model in (plain, compiled):
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
    ids, labels = torch.randint(3, 128, (2, 8)), torch.tensor([0, 1])
    loss_a, grads_a = _loss_and_grads(plain, p_plain, ids, labels)
    loss_b, grads_b = _loss_and_grads(compiled, p_comp, ids, labels)
    assert torch.allclose(loss_a, loss_b, atol=1e-5)
    for a, b in zip(grads_a, grads_b, strict=True):  # bf16 autocast: AOT's decomposed backward rounds apart
        torch.testing.assert_close(a, b, atol=2e-3, rtol=2e-2)
    assert compiled.backbone._compiled_call_impl is not None  # really compiled
    before = probes.compile_counters()
    _loss_and_grads(compiled, p_comp, ids, labels)
    assert probes.compile_counters()["unique_graphs"] == before["unique_graphs"]  # no recompile at step 2


def test_compile_backend_gets_no_mode_outside_inductor(monkeypatch):
    seen = {}
    model = torch.nn.Linear(2, 2)
    monkeypatch.setattr(model, "compile", lambda **kw: seen.update(kw))
    row = models.Row.parse("ptuning_v2+reduce_overhead")
    compile_frozen(model, row.method_config(4, compile_backend="aot_eager"))
    assert seen == {"dynamic": False, "backend": "aot_eager"}
    compile_frozen(model, row.method_config(4, compile_backend="inductor"))
    assert seen["mode"] == "reduce-overhead"


@pytest.fixture(scope="module")
def levers_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("levers") / "levers.json"
    trace = out.parent / "traces"
    assert (
        cli.main(["--preset", "cpu_tiny_speed_switches", "--profile-trace", str(trace), "--out", str(out)])
        == 0
    )
    return json.loads(out.read_text()), trace


SWITCHES = (
    "ptuning_v2+bf16+nodrop",
    "ptuning_v2+bf16+compile",
    "ptuning_v2+bf16+compile+nodrop",
    "ptuning_v2+bf16+reduce_overhead",
)


def test_cpu_tiny_speed_switches_preset(levers_run):
    payload, trace = levers_run
    rows = {r["method"]: r for r in payload["rows"]}
    assert not [r for r in rows.values() if r.get("error") or r.get("skipped")], rows
    assert set(SWITCHES) <= set(rows)
    compiled_rows = [name for name in rows if models.Row.parse(name).compile_mode]
    for name in compiled_rows:
        compiled = rows[name]["compile"]
        assert compiled["backend"] == "aot_eager" and compiled["graph_breaks"] == 0, compiled
        assert rows[name]["build_s"] > 0 and rows[name]["train_ms"] > 0
    # no breaks is no news when nothing was compiled. A later variant may reuse an earlier one's graph (aot_eager
    # ignores the mode), so per family: prefix's rows and ours each compiled at least one graph
    prefix = [name for name in compiled_rows if models.Row.parse(name).method == "prefix"]
    for family in (prefix, [name for name in compiled_rows if name not in prefix]):
        assert family and max(rows[name]["compile"]["graphs"] for name in family) >= 1, family
    # the custom attention traces into one graph, without breaks
    explain = payload["environment"]["explain"]
    assert explain and all(e["graphs"] == 1 and e["graph_breaks"] == 0 for e in explain.values()), explain
    # the profiles of the two chosen cases, CPU columns filled, CUDA ones empty
    profiles = payload["profiles"]
    assert set(profiles) == {"ptuning_v2+bf16:tiny-roberta:8:4", "prefix:tiny-roberta:8:4"}
    for prof in profiles.values():
        assert "error" not in prof, prof
        assert prof["host_ms"] > 0 and prof["step_ms"] > 0 and prof["cpu_ops_per_step"] > 0
        assert prof["gpu_busy_ms"] is None and prof["kernels_per_step"] is None
        assert prof["top_ops_cpu"] and prof["casts"]["calls_per_step"] > 0
        assert {"gemm", "attention"} <= set(prof["categories"])
        assert prof["verdict"]["bound"].startswith("unknown")
    assert len(list(trace.glob("*.json.gz"))) == 2
    levers = payload["targets"]["tiny-roberta"]["levers"]
    assert levers["ptuning_v2+bf16+compile"]["T8_m4"]["vs_prefix"] > 0


def test_speed_switches_plan():
    args = cli.build_parser().parse_args(["--preset", "speed_switches_profile"])
    for name, value in plan.presets()["speed_switches_profile"]["defaults"].items():
        setattr(args, name, value)
    cases = plan.plan(args)
    keys = {(c.method, c.seq, c.prompt) for c in cases}
    for seq, m in ((128, 16), (128, 64), (256, 16), (256, 64)):
        for method in ("ptuning_v2+bf16", "prefix", "ptuning_v2+bf16+nodrop"):
            assert (method, seq, m) in keys
    assert {
        ("ptuning_v2+bf16+compile", 128, 16),
        ("ptuning_v2+bf16+reduce_overhead", 128, 16),
        ("ptuning_v2+bf16+compile", 256, 64),
    } <= keys
    assert len([c for c in cases if c.row.compile_mode]) == 3  # 3 compiles: the budget's driver
    assert all(c.mode == "train" and c.shape == "roberta-large" for c in cases)
    groups = plan.plan_groups(cases)
    assert [g[0].seq for g in groups] == [128, 256]  # T128 first: the guard may skip T256, never T128
    planned = {plan.case_id(c) for c in cases}
    assert set(args.profile_cases) <= planned


def test_prefix_compile_targets_the_module_peft_calls():
    """Prefix tuning runs the bare RoBERTa that peft wraps, with the prefix as past_key_values (`PeftEncoder`):
    that backbone is what ``prefix+compile`` compiles, and it is the module that runs, not peft's wrapper."""
    model, _ = models.build_model("prefix", "tiny-roberta", 4)
    target = model.backbone
    assert target is model.encoder.peft.get_base_model()
    calls = []
    target.register_forward_hook(lambda *_: calls.append(1))
    model.encoder.peft.register_forward_hook(lambda *_: calls.append("wrapper"))
    model(input_ids=torch.randint(3, 100, (2, 8)))
    assert calls == [1]  # the backbone ran; the wrapper's own forward never did
    compiled, _ = models.build_model("prefix+compile", "tiny-roberta", 4, compile_backend="aot_eager")
    assert compiled.backbone._compiled_call_impl is not None
    assert compiled.encoder.peft._compiled_call_impl is None


@pytest.mark.parametrize("with_mask", [True, False])
def test_compiled_peft_prefix_needs_the_collators_mask_where_transformers_never_skips_it(
    monkeypatch, with_mask
):
    """Before torch 2.14 transformers treats dynamo as exporting and never skips the padding mask; the encoder then
    builds one with n key columns for n + m keys (peft widens only a mask it is given). The GPU image's torch 2.11
    failed that way; the compiled_prefix_step preset therefore passes the all-ones mask, with which the compiled
    prefix runs."""
    from transformers import masking_utils

    monkeypatch.setattr(masking_utils, "is_torchdynamo_exporting", lambda: True)
    model, _ = models.build_model("prefix+compile", "tiny-roberta", 4, compile_backend="aot_eager")
    ids = torch.randint(3, 100, (2, 8))
    if with_mask:
        assert model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.shape == (2, 2)
    else:
        with pytest.raises(Exception, match="fake tensor|size of tensor"):
            model(input_ids=ids)
    torch._dynamo.reset()
