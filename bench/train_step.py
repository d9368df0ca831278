"""Training-step throughput of the four paper variants (forward + backward + AdamW).

    python bench/train_step.py --device cpu --batch 8 [--json] [--save]
    python bench/train_step.py --device cuda --batch 256 --bf16 --compile

Inputs are random tensors of the paper shapes (4x32x32 latents, 77x768 text); the
loss is the noise-prediction MSE. Models are timed in interleaved rounds (every
variant once per round) so a burst of load from other processes hits all variants
alike, and each variant's best round (least disturbed, as timeit advises) gives its
seconds/step and speed-up. Beside it: the speed-up from the median rounds, from the
mean over all timed steps (sustained training throughput), and from the process CPU
seconds/step (less sensitive to an oversubscribed CPU); and the FLOP ratio, the
speed-up that time proportional to FLOPs would give. Every round is kept in the JSON.
Achieved TFLOP/s counts 3 x the forward FLOPs with attention matmuls
(generator.profile), i.e. the usual backward = 2 x forward rule.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench._common import load_average, save_result, torch_device_description
from generator.model import PAPER_VARIANTS, build_model
from generator.profile import forward_flops_with_attention
from generator.recipes import ALL_PRESETS

BASELINE = "uvit-s-concat-early"
# The paper's training throughput on one RTX 4090 at batch 256 (it/s), for the "x paper" column.
PAPER_4090_IT_PER_S = {"uvit-s-concat-early": 1.81, "uvit-s-concat-intermediate": 2.31,
                       "uvit-s-cross-early": 2.54, "uvit-s-cross-intermediate": 2.74}
PAPER_BATCH = 256
# Dense bf16 tensor-core peaks (TFLOP/s, the spec sheets' "with sparsity" figures halved) by
# the exact name torch.cuda.get_device_name reports. A substring match would give an H100
# PCIe or NVL the SXM peak and an L40 the L40S's; an unlisted name gets no MFU unless
# --peak-tflops says its peak.
PEAK_BF16_TFLOPS = {
    "NVIDIA H100 80GB HBM3": 989.4,  # H100 SXM5
    "NVIDIA H100 SXM5 80GB": 989.4,
    "NVIDIA H100 PCIe": 756.5,
    "NVIDIA H100 NVL": 835.5,
    "NVIDIA H200": 989.4,  # H200 SXM
    "NVIDIA H200 NVL": 835.5,
    "NVIDIA A100-SXM4-80GB": 312.0,
    "NVIDIA A100-SXM4-40GB": 312.0,
    "NVIDIA A100 80GB PCIe": 312.0,
    "NVIDIA A100-PCIE-40GB": 312.0,
    "NVIDIA L40S": 362.1,
    "NVIDIA L40": 181.0,
    "NVIDIA L4": 121.0,
}


def peak_for(name: str) -> float | None:
    """The dense bf16 peak of a GPU by its exact device name, or None when unlisted."""
    return PEAK_BF16_TFLOPS.get(name.strip())


def default_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return peak_for(torch.cuda.get_device_name(device))


def paper_speedups() -> dict[str, float]:
    """The paper's measured RTX 4090 speed-ups over concat-early (it/s ratios at batch 256)."""
    base = PAPER_4090_IT_PER_S[BASELINE]
    return {name: it / base for name, it in PAPER_4090_IT_PER_S.items() if name != BASELINE}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Runner:
    """One variant: model, optimizer and a fixed random batch."""

    def __init__(self, name: str, args: argparse.Namespace, device: torch.device):
        cfg = ALL_PRESETS[name]
        self.name, self.device, self.bf16 = name, device, args.bf16
        torch.manual_seed(0)
        self.model = build_model(cfg).to(device).train()
        self.params = sum(p.numel() for p in self.model.parameters())
        self.step_model = torch.compile(self.model) if args.compile else self.model
        # U-ViT's optimizer settings; the fused kernel is the fastest AdamW on CPU and
        # CUDA. Its cost grows with parameters, not tokens (intermediate fusion has 7% more).
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=2e-4, weight_decay=0.03, betas=(0.9, 0.9), fused=True
        )
        B = args.batch
        self.x = torch.randn(B, cfg.in_chans, cfg.img_size, cfg.img_size, device=device)
        self.t = torch.randint(0, 1000, (B,), device=device)
        self.context = torch.randn(B, cfg.text_len, cfg.text_dim, device=device)
        self.target = torch.randn_like(self.x)
        self.train_flops = 3.0 * forward_flops_with_attention(cfg) * B

    def step(self) -> None:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            eps = self.step_model(self.x, self.t, self.context)
        loss = F.mse_loss(eps.float(), self.target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def time_steps(self, n: int) -> tuple[float, float]:
        """(wall, process CPU) seconds per step over n steps."""
        sync(self.device)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            self.step()
        sync(self.device)
        return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n


def _peak_memory(device: torch.device) -> float | None:
    """GiB allocated at most since the last reset (CUDA only)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


@dataclass
class Timings:
    """What ``run`` measures, per variant: wall and CPU seconds of each round, the
    description (``describe``), and the variants skipped for --budget-s."""

    times: dict[str, list[float]] = field(default_factory=dict)
    cpu_times: dict[str, list[float]] = field(default_factory=dict)
    info: dict[str, dict] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def add_round(self, name: str, wall: float, cpu: float) -> None:
        self.times.setdefault(name, []).append(wall)
        self.cpu_times.setdefault(name, []).append(cpu)


def describe(r: Runner, first_steps_s: float, peak_gib: float | None) -> dict:
    return {"params": r.params, "train_flops": r.train_flops, "warmup_s": first_steps_s, "peak_mem_gib": peak_gib}


def run(args: argparse.Namespace, on_variant: Callable[[dict], None] | None = None) -> dict:
    """Time every variant; `on_variant(result so far)` is called after each variant in
    --sequential mode, so a caller can write the table before a time limit stops it."""
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 runs use TF32 tensor cores
        torch.backends.cudnn.allow_tf32 = True
    load_before = round(load_average(), 2)

    def after_variant(t: Timings) -> None:
        if on_variant is not None:
            on_variant(summarize(args, t.times, t.cpu_times, t.info, t.skipped, load_before))

    if args.sequential:
        timings = run_sequential(args, device, after_variant)
    else:
        timings = run_interleaved(args, device)
    return summarize(args, timings.times, timings.cpu_times, timings.info, timings.skipped, load_before)


def run_sequential(args: argparse.Namespace, device: torch.device, after_variant: Callable[[Timings], None]
                   ) -> Timings:
    """One variant at a time, alone on the device: its peak memory is its own, and a
    slow compile of a later variant cannot take away the ones already measured.
    ``after_variant(timings so far)`` follows each variant."""
    began = time.perf_counter()
    t = Timings()
    for name in args.variants:
        if t.times and args.budget_s is not None and time.perf_counter() - began > args.budget_s:
            t.skipped.append(name)
            continue
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        r = Runner(name, args, device)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            r.step()
        sync(device)
        first = time.perf_counter() - t0
        t.times[name], t.cpu_times[name] = [], []
        for _ in range(args.rounds):
            t.add_round(name, *r.time_steps(args.steps))
        t.info[name] = describe(r, first, _peak_memory(device))
        del r
        if device.type == "cuda":
            torch.cuda.empty_cache()
        after_variant(t)
    return t


def run_interleaved(args: argparse.Namespace, device: torch.device) -> Timings:
    """Every variant resident at once, their rounds interleaved so that load from other
    processes hits them alike (no per-variant peak memory here)."""
    t = Timings()
    runners = [Runner(n, args, device) for n in args.variants]
    firsts = {}
    for r in runners:
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            r.step()
        sync(device)
        firsts[r.name] = time.perf_counter() - t0
    for r in runners:
        t.times[r.name], t.cpu_times[r.name] = [], []
    for _ in range(args.rounds):
        for r in runners:
            t.add_round(r.name, *r.time_steps(args.steps))
    t.info = {r.name: describe(r, firsts[r.name], None) for r in runners}
    return t


def summarize(args: argparse.Namespace, times: dict[str, list[float]], cpu_times: dict[str, list[float]],
              info: dict[str, dict], skipped: list[str], load_before: float) -> dict:
    """The result document of the variants timed so far."""
    device = torch.device(args.device)
    peak = args.peak_tflops if args.peak_tflops is not None else default_peak(device)
    done = [n for n in args.variants if n in times]
    # The paper's baseline when it is benchmarked, else the first variant timed.
    baseline = BASELINE if BASELINE in times else (done[0] if done else None)
    rows = []
    if baseline is not None:
        base = min(times[baseline])
        base_median = statistics.median(times[baseline])
        base_mean = statistics.fmean(times[baseline])
        base_cpu = min(cpu_times[baseline])
        base_flops = info[baseline]["train_flops"]
    for name in done:
        sec = min(times[name])
        median = statistics.median(times[name])
        tflops = info[name]["train_flops"] / sec / 1e12
        rows.append({
            "name": name,
            "params": info[name]["params"],
            "sec_per_it": sec,
            "it_per_s": 1.0 / sec,
            "speedup": base / sec,
            "tflops": tflops,
            "mfu": tflops / peak if peak else None,
            # Comparable only at the paper's batch size.
            "x_paper_4090": (1.0 / sec / PAPER_4090_IT_PER_S[name]
                             if args.batch == PAPER_BATCH and name in PAPER_4090_IT_PER_S else None),
            "sec_per_it_median": median,
            "speedup_median": base_median / median,
            "sec_per_it_mean": statistics.fmean(times[name]),
            "speedup_mean": base_mean / statistics.fmean(times[name]),
            "flop_ratio": base_flops / info[name]["train_flops"],
            "cpu_sec_per_it": min(cpu_times[name]),
            "speedup_cpu_time": base_cpu / min(cpu_times[name]),
            "warmup_s": info[name]["warmup_s"],
            "peak_mem_gib": info[name]["peak_mem_gib"],
            "sec_per_it_rounds": times[name],
            "cpu_sec_per_it_rounds": cpu_times[name],
        })
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "command": "python bench/train_step.py " + " ".join(args.argv),
        "device": args.device,
        "machine": torch_device_description(device),
        "torch": torch.__version__,
        "batch": args.batch,
        "bf16": args.bf16,
        "compile": args.compile,
        "sequential": args.sequential,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "peak_tflops": peak,
        # 1-minute load averages: on a shared CPU, a load above the core count means the
        # wall-clock numbers include waiting for other processes.
        "loadavg_start": load_before,
        "loadavg_end": round(load_average(), 2),
        "baseline": baseline,
        "variants": rows,
        "skipped_over_budget": skipped,
        "not_yet_timed": [n for n in args.variants if n not in times and n not in skipped],
    }


def format_table(res: dict) -> str:
    gpu = res["device"] == "cuda"
    order = "one variant at a time" if res["sequential"] else "interleaved rounds"
    lines = [
        f"# train_step  {res['date']}  device={res['device']}  machine: {res['machine']}",
        f"# {res['command']}",
        f"# torch {res['torch']}  batch={res['batch']}  bf16={res['bf16']}  compile={res['compile']}  "
        f"warmup={res['warmup']}  rounds={res['rounds']} x {res['steps_per_round']} steps ({order}, best round "
        f"per variant)  load average {res['loadavg_start']} -> {res['loadavg_end']}",
    ]
    head = (f"{'variant':28s} {'it/s':>8s} {'s/it':>8s} {'speed-up':>9s} {'median':>8s} {'mean':>7s} "
            f"{'CPU s/it':>9s} {'CPU-time':>9s} {'FLOPs':>7s} {'warm-up s':>9s}")
    if gpu:
        head += f" {'TFLOP/s':>8s} {'MFU':>7s} {'x paper':>8s} {'peak GiB':>8s}"
    lines += [head, "-" * len(head)]
    for r in res["variants"]:
        line = f"{r['name']:28s} {r['it_per_s']:>8.3f} {r['sec_per_it']:>8.3f} "
        line += f"{r['speedup']:>8.2f}x {r['speedup_median']:>7.2f}x {r['speedup_mean']:>6.2f}x"
        line += f" {r['cpu_sec_per_it']:>9.3f} {r['speedup_cpu_time']:>8.2f}x {r['flop_ratio']:>6.2f}x"
        line += f" {r['warmup_s']:>9.1f}"
        if gpu:
            line += f" {r['tflops']:>8.1f} " + (f"{100 * r['mfu']:>6.1f}%" if r["mfu"] else f"{'-':>7s}")
            line += f" {r['x_paper_4090']:>7.2f}x" if r["x_paper_4090"] else f" {'-':>8s}"
            line += f" {r['peak_mem_gib']:>8.2f}" if r["peak_mem_gib"] is not None else f" {'-':>8s}"
        lines.append(line)
    for name in res["skipped_over_budget"]:
        lines.append(f"{name:28s} not timed: the run's time budget was spent before it started")
    for name in res["not_yet_timed"]:
        lines.append(f"{name:28s} not timed yet (this table is written after each variant)")
    paper = ", ".join(f"{v:.2f}x" for v in paper_speedups().values())
    lines.append(f"# it/s: optimizer steps (forward + backward + AdamW) per second at batch {res['batch']}. "
                 f"speed-up: over {res['baseline']}'s it/s from the best round; 'median': from median rounds; "
                 "'mean': from all timed steps; 'CPU-time': from the best round's process CPU seconds.")
    lines.append("# FLOPs: baseline / variant training FLOPs, the speed-up that time proportional to FLOPs would "
                 f"give (not a measurement). The paper's MEASURED RTX 4090 speed-ups at batch {PAPER_BATCH}, "
                 f"from its it/s, are {paper} (concat-intermediate, cross-early, cross-intermediate).")
    lines.append("# warm-up s: the untimed first steps (with --compile, mostly the compilation).")
    if gpu:
        lines.append(
            "# TFLOP/s: 3 x forward FLOPs incl. attention matmuls (generator.profile) x batch / s; MFU: that over "
            + (f"the device's dense bf16 peak, {res['peak_tflops']} TFLOP/s" if res["peak_tflops"]
               else "no peak (unlisted device name; pass --peak-tflops)")
            + f"; 'x paper': it/s over the paper's RTX 4090 it/s at batch {PAPER_BATCH} "
            + f"({', '.join(str(v) for v in PAPER_4090_IT_PER_S.values())}); peak GiB: "
            + "torch.cuda.max_memory_allocated while that variant ran alone (--sequential only).")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    def write_table(res: dict) -> None:
        if args.table is not None:
            tmp = args.table.with_name(args.table.name + ".tmp")
            tmp.write_text(format_table(res) + "\n" + json.dumps(res) + "\n")
            tmp.replace(args.table)

    res = run(args, on_variant=write_table)
    write_table(res)
    text = json.dumps(res) if args.json else format_table(res)
    print(text)
    if args.save:
        out = save_result(f"train_step-{args.device}", format_table(res) + "\n" + json.dumps(res) + "\n\n", append=True)
        print(f"appended to {out}", file=sys.stderr)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--variants", nargs="+", default=list(PAPER_VARIANTS), choices=sorted(ALL_PRESETS))
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per variant")
    p.add_argument("--rounds", type=int, default=8, help="timing rounds")
    p.add_argument("--steps", type=int, default=1, help="timed steps per variant per round")
    p.add_argument("--sequential", action="store_true",
                   help="time one variant at a time (all its rounds), freeing it before the next; the GPU mode")
    p.add_argument("--budget-s", type=float, default=None,
                   help="--sequential: after the first variant, start no further one past this many seconds "
                   "(a bounded compile check)")
    p.add_argument("--table", type=Path, default=None,
                   help="rewrite this file with the table (and JSON) after each variant and at the end")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="for MFU; default: the dense bf16 peak of the exact GPU name in PEAK_BF16_TFLOPS")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--save", action="store_true",
                   help="append table + JSON to bench/results/train_step-<device>-<date>.txt")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.budget_s is not None and not args.sequential:
        p.error("--budget-s needs --sequential")
    return args


if __name__ == "__main__":
    main(parse_args())
