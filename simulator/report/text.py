"""The readable text report of `clustersim run`: formatting of the JSON report, nothing computed."""

from __future__ import annotations

from typing import Any

from simulator.core.units import fmt_bytes
from simulator.execution.breakdown import ROWS as BREAKDOWN_ROWS
from simulator.report.energy import energy_lines
from simulator.report.goodput import goodput_lines


def _gb(n: float) -> str:
    return f"{n / 1e9:10.2f} GB"


def render_text(report: dict[str, Any]) -> str:
    lines = (
        _header(report)
        + _memory(report)
        + _step(report)
        + _training(report)
        + goodput_lines(report)
        + energy_lines(report)
    )
    return "\n".join(lines)


def _framework(t: dict[str, Any]) -> str:
    fw = t.get("framework", "pytorch-fsdp")
    return "" if fw == "pytorch-fsdp" else f" ({fw})"


def _header(report: dict[str, Any]) -> list[str]:
    t, c, m = report["training"], report["cluster"], report["model"]
    shape = f"{m['num_layers']} layers, hidden {m['hidden_size']}" + (
        " (estimated)" if m.get("shape_estimated") else ""
    )
    lines = [
        f"Scenario: {report['name']}",
        f"  model     {m['name']}: {m['params']:,} parameters ({shape})",
        (
            f"  training  {t['strategy']}{_framework(t)}, {t['precision']}, {t['optimizer']}, micro-batch {t['micro_batch_size']} x "
            f"seq {t['seq_len']}, accum {t['grad_accum_steps']} (global batch {t['global_batch_size']} seqs), "
            f"checkpointing {t['activation_checkpointing']}"
            + (f", {t['kernels']} kernels" if t.get("kernels") else "")
            + (f", {t['attention_kernel']} attention" if t.get("attention_kernel") else "")
        ),
        f"  cluster   {c['num_gpus']} x {c['gpu']} on {c['num_hosts']} host(s) of topology {c['topology']}"
        + (f", power cap {c['power_cap_w']:g} W per GPU" if c.get("power_cap_w") else ""),
    ]
    if m.get("preset_defaults"):
        taken = ", ".join(
            f"{k} {'on' if v else 'off'}" if isinstance(v, bool) else f"{k} {v}"
            for k, v in m["preset_defaults"].items()
        )
        lines.insert(2, f"            defaults from preset {m['name']}: {taken}")
    par = t.get("parallelism")
    if par and par["tp"] * par["pp"] * par.get("cp", 1) * par.get("ep", 1) > 1:
        pipe = (
            (
                f", {par['schedule']}"
                + (
                    f" with {par['virtual_stages']} virtual stages"
                    if par["virtual_stages"] > 1
                    else ""
                )
                + f", {par['microbatches']} micro-batches"
            )
            if par["pp"] > 1
            else ""
        )
        sp = " with sequence parallelism" if par["sequence_parallel"] else ""
        if par.get("tp_comm_overlap"):
            sp += " (its communication overlapped with the GEMMs)"
        cp = f" x cp {par['cp']} ({par['cp_comm']})" if par.get("cp", 1) > 1 else ""
        lines.append(
            f"  parallel  tp {par['tp']}{sp}{cp} x pp {par['pp']}{pipe} x dp {par['dp']} "
            f"(mesh {' < '.join(par['order'])}, innermost first)"
        )
        if m.get("active_params"):
            lines.append(
                f"  experts   ep {par['ep']} x etp {par['etp']} x edp {par['edp']} (folded over "
                f"the tp x cp x dp ranks); {m['active_params']:,} parameters active per token"
            )
    if c.get("gpu_assumed_defaults"):
        lines.append(
            f"            custom GPU: assumed defaults for {', '.join(c['gpu_assumed_defaults'])}"
        )
    for st in c.get("stragglers", []):
        lines.append(f"  straggler rank {st['rank']}: every kernel x{st['slowdown']:g} slower")
    for d in c.get("degraded_links", []):
        both = " (both directions)" if d["both_directions"] else ""
        lines.append(
            f"  degraded link {d['source']} -> {d['target']}{both}: "
            f"{100 * d['bandwidth_factor']:g}% of its bandwidth"
        )
    cal = report.get("calibration")
    if cal:
        lines.append(
            f"  calibration {cal['profile']}: {len(cal['constants'])} fitted constants "
            f"({', '.join(cal['constants'])})"
        )
    lines += [f"  warning: {w}" for w in report.get("warnings", [])]
    return lines


def _memory(report: dict[str, Any]) -> list[str]:
    mem, per = report["memory"], report["memory"]["per_gpu"]
    where = (
        f"worst pipeline stage: {mem['stage']} of 0..{mem['stages'] - 1}; "
        if mem.get("stages", 1) > 1
        else ""
    )
    lines = [
        "",
        f"Memory per GPU at the analytic peak ({where}shard degree {mem['shard_degree']}):",
    ]
    total = per["total_bytes"] or 1
    for key in ("params", "grads", "optimizer", "activations", "buffers", "overhead"):
        value = per[f"{key}_bytes"]
        lines.append(
            f"  {key:<12}{_gb(value)}  {100 * value / total:5.1f}%  ({fmt_bytes(value, binary=True)})"
        )
    lines += [
        f"  {'-' * 40}",
        f"  {'total':<12}{_gb(per['total_bytes'])}          ({fmt_bytes(per['total_bytes'], binary=True)})",
        f"  {'capacity':<12}{_gb(mem['capacity_bytes'])}          ({fmt_bytes(mem['capacity_bytes'], binary=True)})",
        f"  model states (params + grads + optimizer): {mem['model_states_bytes'] / 1e9:.2f} GB",
        f"  analytic peak (the verdict's): {mem['analytic_peak_moment']}",
    ]
    if mem["fits"]:
        lines.append(
            f"  verdict     FITS, headroom {mem['headroom_bytes'] / 1e9:.2f} GB; largest component: "
            f"{mem['dominant']}"
        )
    else:
        lines.append(
            f"  verdict     OUT OF MEMORY, short by {-mem['headroom_bytes'] / 1e9:.2f} GB; "
            f"largest component: {mem['dominant']}"
        )
        lines += [f"    - {s}" for s in mem["suggestions"]]
    if mem.get("stages", 1) > 1:
        lines.append(
            "  per stage:  " + ", ".join(f"{b / 1e9:.1f}" for b in mem["stage_total_bytes"]) + " GB"
        )
    if mem["cpu_per_host_bytes"]:
        lines.append(f"  CPU memory per host (offload): {mem['cpu_per_host_bytes'] / 1e9:.2f} GB")
    lines.append(
        f"  weights: {mem['weights_fp32_bytes'] / 1e9:.2f} GB at 32-bit (4 bytes/param), "
        f"{mem['weights_bytes'] / 1e9:.2f} GB as trained; training uses {mem['training_bytes_per_param']:.1f} "
        f"bytes/param over the job = {mem['training_to_fp32_weights_ratio']:.1f}x the 32-bit weights"
    )
    if "peak_time_s" in mem:
        lines.append(
            f"  timeline check: the simulated step's allocations peak at {mem['timeline_peak_bytes'] / 1e9:.2f} "
            f"GB, {mem['peak_time_s'] * 1e3:.1f} ms into the step, in: {mem['peak_op']}"
        )
    lines += [f"  note: {n}" for n in mem["notes"]]
    lines.append(f"  convention: {mem['convention']}")
    return lines


def _step(report: dict[str, Any]) -> list[str]:
    st = report.get("step")
    if not st:
        return []
    lines = [
        "",
        "Step:",
        f"  time        {st['time_s'] * 1e3:10.1f} ms   ({st['tokens_per_step']:,} tokens)",
        f"  compute     {st['compute_s'] * 1e3:10.1f} ms",
        (
            f"  comm        {st['comm_s'] * 1e3:10.1f} ms   exposed {st['exposed_comm_s'] * 1e3:.1f} ms "
            f"({st['comm_overhead_pct']:.1f}% of the step)"
        ),
        f"  throughput  {st['tokens_per_s']:,.0f} tokens/s = {st['tokens_per_s_per_gpu']:,.0f} per GPU",
        (
            f"  MFU {100 * st['mfu']:.1f}%  ({st['tflops_per_gpu']:.1f} model TFLOP/s per GPU);  "
            f"HFU {100 * st['hfu']:.1f}%  ({st['hardware_tflops_per_gpu']:.1f} hardware TFLOP/s)"
        ),
        f"  FLOPs: {st['flops_convention']}",
    ]
    lines += _breakdown(st, report["training"].get("parallelism", {}).get("pp", 1))
    lines += _interval(st.get("interval"), report.get("calibration"))
    if len(st.get("rank_classes", [])) > 1:
        lines.append(
            "  rank classes: " + "; ".join(f"{c['name']} x{c['ranks']}" for c in st["rank_classes"])
        )
    if report.get("collectives"):
        lines.append(
            "  collectives per step (each: one instance alone on the network; the step shares links):"
        )
        lines.append(
            f"    {'op':<15}{'group':<14}{'ranks':>6}{'size':>12}{'count':>7}{'each':>11}{'busbw':>12}  "
            "algorithm"
        )
        for c in report["collectives"]:
            algorithm = "/".join(filter(None, (c["algorithm"], c.get("protocol"))))
            lines.append(
                f"    {c['op']:<15}{c['group']:<14}{c['group_size']:>6}{fmt_bytes(c['bytes']):>12}"
                f"{c['count']:>7}{c['time_s'] * 1e3:>9.2f}ms{c['busbw_GBps']:>8.1f} GB/s  {algorithm}"
            )
    return lines


def _breakdown(st: dict[str, Any], pp: int) -> list[str]:
    """One GPU's step by op class, then where each class's kernel times come from."""
    bd = st.get("breakdown")
    if not bd:
        return []
    where = f" (pipeline stage {bd['stage']})" if pp > 1 else ""
    lines = [
        f"  breakdown of one GPU's step{where}:",
        f"    {'class':<32}{'time ms':>10}{'share':>9}",
    ]
    step = st["time_s"] or 1.0
    for key, label in BREAKDOWN_ROWS:
        if key == "optimizer_s" and bd.get("optimizer_offloaded"):
            label = "optimizer (CPU step + PCIe)"
        lines.append(f"    {label:<32}{bd[key] * 1e3:>10.1f}{100 * bd[key] / step:>8.1f}%")
    if bd.get("other_clamped_s"):
        lines.append(
            f"    note: the rows above exceed the step by {bd['other_clamped_s'] * 1e3:.1f} ms "
            "(they overlap); other is shown as 0"
        )
    sources: dict[str, list[str]] = {}
    for name, source in bd.get("sources", {}).items():
        sources.setdefault(source, []).append(name)
    lines += [f"    kernel source ({', '.join(names)}): {src}" for src, names in sources.items()]
    return lines


def _interval(iv: dict[str, Any] | None, calibration: Any) -> list[str]:
    """The step's interval line (studies/intervals.py fits it to the validation errors)."""
    if not iv:
        return []
    (t0, t1), (r0, r1) = iv["time_s"], iv["tokens_per_s_per_gpu"]
    line = (
        f"  {100 * iv['level']:.0f}% interval: step {t0:.3g}-{t1:.3g} s, tokens/s/GPU {r0:,.0f}-{r1:,.0f} "
        f"(from {iv['cases']} validation cases: group {iv['group']})"
    )
    built_in = (
        "; their errors are the built-in constants', not this profile's" if calibration else ""
    )
    return [line + built_in]


def _training(report: dict[str, Any]) -> list[str]:
    tr = report.get("training", {})
    if "days" not in tr:
        return []
    return [
        "",
        f"Training on {tr['tokens']:.3g} tokens: {tr['flops']:.3g} FLOPs = {tr['pf_days']:,.1f} PF-days; "
        f"{tr['days']:,.1f} days on these GPUs = {tr['gpu_hours']:,.0f} GPU-hours"
        + (f", ${tr['cost_usd']:,.0f}" if "cost_usd" in tr else ""),
    ] + (
        [
            f"  80% interval: {tr['days_interval'][0]:,.1f}-{tr['days_interval'][1]:,.1f} days (the step's)"
        ]
        if "days_interval" in tr
        else []
    )
