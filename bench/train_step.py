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
# Dense bf16 tensor-core peaks (TFLOP/s, SXM parts) by a substring of the device name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0}




def default_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


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


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 runs use TF32 tensor cores
        torch.backends.cudnn.allow_tf32 = True
    load_before = round(load_average(), 2)
    runners = [Runner(n, args, device) for n in args.variants]
    for r in runners:
        for _ in range(args.warmup):
            r.step()
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    cpu_times: dict[str, list[float]] = {r.name: [] for r in runners}
    for _ in range(args.rounds):
        for r in runners:
            wall, cpu = r.time_steps(args.steps)
            times[r.name].append(wall)
            cpu_times[r.name].append(cpu)

    peak = args.peak_tflops if args.peak_tflops is not None else default_peak(device)
    # The paper's baseline when it is benchmarked, else the first variant listed.
    baseline = BASELINE if BASELINE in times else args.variants[0]
    base = min(times[baseline])
    base_median = statistics.median(times[baseline])
    base_mean = statistics.fmean(times[baseline])
    base_cpu = min(cpu_times[baseline])
    base_flops = next(r.train_flops for r in runners if r.name == baseline)
    rows = []
    for r in runners:
        sec = min(times[r.name])
        median = statistics.median(times[r.name])
        tflops = r.train_flops / sec / 1e12
        rows.append({
            "name": r.name,
            "params": r.params,
            "sec_per_it": sec,
            "it_per_s": 1.0 / sec,
            "speedup": base / sec,
            "tflops": tflops,
            "mfu": tflops / peak if peak else None,
            # Comparable only at the paper's batch size.
            "x_paper_4090": (1.0 / sec / PAPER_4090_IT_PER_S[r.name]
                             if args.batch == PAPER_BATCH and r.name in PAPER_4090_IT_PER_S else None),
            "sec_per_it_median": median,
            "speedup_median": base_median / median,
            "sec_per_it_mean": statistics.fmean(times[r.name]),
            "speedup_mean": base_mean / statistics.fmean(times[r.name]),
            "flop_ratio": base_flops / r.train_flops,
            "cpu_sec_per_it": min(cpu_times[r.name]),
            "speedup_cpu_time": base_cpu / min(cpu_times[r.name]),
            "sec_per_it_rounds": times[r.name],
            "cpu_sec_per_it_rounds": cpu_times[r.name],
        })
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "device": args.device,
        "machine": torch_device_description(device),
        "torch": torch.__version__,
        "batch": args.batch,
        "bf16": args.bf16,
        "compile": args.compile,
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
    }


def format_table(res: dict) -> str:
    gpu = res["device"] == "cuda"
    lines = [
        f"# train_step  {res['date']}  device={res['device']}  machine: {res['machine']}",
        f"# torch {res['torch']}  batch={res['batch']}  bf16={res['bf16']}  compile={res['compile']}  "
        f"warmup={res['warmup']}  rounds={res['rounds']} x {res['steps_per_round']} steps (best round per variant)  "
        f"load average {res['loadavg_start']} -> {res['loadavg_end']}",
    ]
    head = (f"{'variant':28s} {'it/s':>8s} {'s/it':>8s} {'speed-up':>9s} {'median':>8s} {'mean':>7s} "
            f"{'CPU s/it':>9s} {'CPU-time':>9s} {'FLOPs':>7s}")
    if gpu:
        head += f" {'TFLOP/s':>8s} {'MFU':>7s} {'x paper':>8s}"
    lines += [head, "-" * len(head)]
    for r in res["variants"]:
        line = f"{r['name']:28s} {r['it_per_s']:>8.3f} {r['sec_per_it']:>8.3f} "
        line += f"{r['speedup']:>8.2f}x {r['speedup_median']:>7.2f}x {r['speedup_mean']:>6.2f}x"
        line += f" {r['cpu_sec_per_it']:>9.3f} {r['speedup_cpu_time']:>8.2f}x {r['flop_ratio']:>6.2f}x"
        if gpu:
            line += f" {r['tflops']:>8.1f} " + (f"{100 * r['mfu']:>6.1f}%" if r["mfu"] else f"{'-':>7s}")
            line += f" {r['x_paper_4090']:>7.2f}x" if r["x_paper_4090"] else f" {'-':>8s}"
        lines.append(line)
    lines.append(f"# speed-up over {res['baseline']} from the best round; 'median': from median rounds; "
                 "'mean': from all timed steps; 'CPU-time': from the best round's process CPU seconds; "
                 "'FLOPs': baseline/variant training FLOPs (paper, GPU: 1.28, 1.40, 1.51)")
    if gpu:
        lines.append(f"# TFLOP/s = 3 x forward FLOPs incl. attention / s; MFU vs peak {res['peak_tflops']} TFLOP/s; "
                     f"'x paper': it/s over the paper's RTX 4090 it/s at batch {PAPER_BATCH} "
                     f"({', '.join(str(v) for v in PAPER_4090_IT_PER_S.values())})")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    res = run(args)
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
    p.add_argument("--rounds", type=int, default=8, help="interleaved timing rounds")
    p.add_argument("--steps", type=int, default=1, help="timed steps per variant per round")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--peak-tflops", type=float, default=None, help="for MFU; default by GPU name (bf16 dense)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--save", action="store_true",
                   help="append table + JSON to bench/results/train_step-<device>-<date>.txt")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
