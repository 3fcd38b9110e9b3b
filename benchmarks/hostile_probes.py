"""Inputs a real user writes on a bad day (issue 18's probes): each must end within 10 s with a
clean answer - exit 2 naming the file, field and expectation, or a result that states what it
found - and without a traceback or more than 1 GB of memory.

    python benchmarks/hostile_probes.py            # prints one row per probe, exit 1 if any fails

Each probe runs `python -m simulator ...` in a subprocess; the wall time and the child's peak
resident memory (os.wait4) are printed beside the exit code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIME_LIMIT_S = 10.0
MEMORY_LIMIT_BYTES = 2**30
ROOT = Path(__file__).resolve().parent.parent

SMALL = {
    "name": "probe",
    "model": {"preset": "llama2-7b"},
    "training": {"strategy": "zero3", "micro_batch_size": 1, "seq_len": 4096},
    "cluster": {"topology": "dgx-a100", "num_hosts": 1},
}


def _with(base: dict, path: str, value) -> dict:
    data = json.loads(json.dumps(base))
    node = data
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return data


def _scenario_405b() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "scenarios" / "llama3-405b-tp8-pp16-16k-h100.yaml").read_text())


def _laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _topology(**fields) -> dict:
    return {"name": "probe-topology", "gpu": "h100-sxm-80gb", **fields}


def probes(tmp: Path) -> list[tuple[str, list[str], set[int]]]:
    """(label, CLI arguments, accepted exit codes)."""
    files: dict[str, dict | str] = {}
    big = _scenario_405b()
    for label, rel in [
        ("mtbf-800h", {"failures": {"gpu": {"mtbf": "800 h"}}}),
        ("rate-scale-1e5", {"failure_rate_scale": 1e5}),
        ("mtbf-1s", {"failures": {"gpu": {"mtbf": "1 s"}}}),
        ("weibull-0.01", {"failures": {"gpu": {"weibull_shape": 0.01}}}),
        ("window-1e9-days", {"window": "1e9 days"}),
    ]:
        files[f"rel-{label}.yaml"] = _with(big, "reliability", rel)
    files["gbs-tokens.yaml"] = _with(SMALL, "training.global_batch_size", 4194304)
    files["bomb.yaml"] = _laughs()
    files["nvls-a100.yaml"] = _with(SMALL, "training.collective_algorithm", "nvls")
    files["zero3-section-ddp.yaml"] = _with(
        _with(SMALL, "training.strategy", "ddp"), "training.zero3", {"reshard_after_forward": False}
    )
    files["shard-group-zero3.yaml"] = _with(SMALL, "training.shard_group_size", 8)
    files["gpu-mem-80.yaml"] = _with(
        SMALL,
        "cluster.gpu",
        {
            "name": "mine",
            "memory": "80",
            "hbm_bandwidth": "2 TB/s",
            "peak_flops": {"bf16": "312 TFLOP/s"},
        },
    )
    topo = {
        "torus-1000.yaml": _topology(
            builder="torus", dims=[1000, 1000, 1000], link_bw="100 GB/s", link_latency="1 us"
        ),
        "fc-100k.yaml": _topology(builder="fully-connected", num_gpus=100000, link_bw="100 GB/s"),
        "host-100k.yaml": _topology(
            builder="nvswitch", gpus_per_host=100000, nvlink_bw="900 GB/s", num_hosts=1
        ),
        "nic-bw-400.yaml": _topology(
            builder="nvswitch",
            gpus_per_host=8,
            nvlink_bw="900 GB/s",
            num_hosts=2,
            nic={"per_host": 8, "bw": 400, "pcie_bw": "64 GB/s"},
        ),
    }
    files.update(topo)
    for name, topo_file in [(n, n) for n in topo]:
        files[f"on-{name}"] = _with(SMALL, "cluster.topology", str(tmp / topo_file))
    for name, data in files.items():
        text = data if isinstance(data, str) else json.dumps(data)
        (tmp / name).write_text(text)
    (tmp / "afile").write_text("x")
    rows: list[tuple[str, list[str], set[int]]] = []
    for name in files:
        if name.startswith(("rel-", "gbs-", "bomb", "nvls", "zero3", "shard", "gpu-", "on-")):
            ok = {0, 2} if name.startswith("rel-") else {2}
            rows.append((f"validate {name}", ["validate", str(tmp / name)], ok))
            rows.append((f"run {name}", ["run", str(tmp / name)], ok))
    for name in topo:
        rows.append((f"topology show {name}", ["topology", "show", str(tmp / name)], {2}))
    rows += [
        ("run --trace missing/", ["run", "--trace", str(tmp / "missing" / "t.json")], {2}),
        ("run --trace under a file", ["run", "--trace", str(tmp / "afile" / "t.json")], {2}),
        ("collective --sizes 2P", ["collective", "--topology", "dgx-a100", "--sizes", "2P"], {2}),
    ]
    return rows


def run_probe(args: list[str], stdout=subprocess.DEVNULL) -> tuple[int, float, int, str]:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        start_new_session=True,
    )
    deadline = start + TIME_LIMIT_S
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)  # the command and any pool workers it started
            pid, status, usage = os.wait4(proc.pid, 0)
            return -9, time.perf_counter() - start, usage.ru_maxrss * 1024, "timed out"
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    return os.waitstatus_to_exitcode(status), elapsed, usage.ru_maxrss * 1024, err


def main() -> int:
    failures = 0
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        rows = probes(tmp)
        with open("/dev/full", "w") as full:
            full_row = ("run > /dev/full", ["run"], {1, 2}, full)
            for label, args, ok, *out in [*[(*r, subprocess.DEVNULL) for r in rows], full_row]:
                code, elapsed, rss, err = run_probe(args, stdout=out[0])
                good = code in ok and "Traceback" not in err and rss < MEMORY_LIMIT_BYTES
                failures += not good
                first = err.strip().splitlines()[0][:110] if err.strip() else ""
                print(
                    f"{'ok ' if good else 'BAD'} {label:42s} exit {code:3d} {elapsed:5.2f} s "
                    f"{rss / 2**20:6.0f} MiB  {first}"
                )
    print(f"{len(rows) + 1 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
