"""A cold `verbatim ask`: wall time of fresh processes answering one question, and what they import.

    .venv/bin/python -m benchmarks.cold_start [--runs 5] [--top 15]

Builds an index of the seed article (tests/data) in a temporary folder, with the exported ONNX
model kept where the app keeps it (`var/models/`, so the export happens at most once), then runs
`verbatim ask --json "How many civilians were killed?"` in `--runs` fresh processes and prints the
median, minimum and maximum wall time (and the median CPU time). One more run under `python -X importtime` lists the
packages that cost the most to import.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, log, machine, median, table

SEED_ARTICLE = ROOT / "tests" / "data" / "syria-vows-accountability.md"
QUESTION = "How many civilians were killed?"


def cli_command() -> list[str]:
    """The installed `verbatim` script, run by this interpreter (so -X options can be added)."""
    script = shutil.which("verbatim", path=str(Path(sys.executable).parent))
    if script is None:
        return [sys.executable, "-m", "bot.cli"]
    return [sys.executable, script]


def environment(folder: Path) -> dict[str, str]:
    env = {**os.environ, "DATA_DIR": str(folder / "var"), "CORPUS_DIR": str(folder / "corpus"),
           "MODEL_CACHE_DIR": str(ROOT / "var" / "models"), "HF_HUB_OFFLINE": "1"}
    # The code of this checkout, whatever the installed package points at.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return env


def prepare(folder: Path) -> dict[str, str]:
    (folder / "corpus").mkdir(parents=True)
    shutil.copy(SEED_ARTICLE, folder / "corpus")
    env = environment(folder)
    log("building the seed index (exports the model to ONNX the first time)")
    subprocess.run([*cli_command(), "index", "build"], env=env, check=True, cwd=folder,
                   stdout=subprocess.DEVNULL)
    return env


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_ask(env: dict[str, str], folder: Path, extra: list[str] | None = None) -> tuple[float, float, str]:
    """Wall and CPU seconds of one `verbatim ask` process, and its stderr."""
    command = [*cli_command(), "ask", "--json", QUESTION]
    if extra:
        command = [command[0], *extra, *command[1:]]
    cpu_before, started = children_cpu_seconds(), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - started, children_cpu_seconds() - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"`verbatim ask` failed ({done.returncode}): {done.stdout}{done.stderr}")
    answer = json.loads(done.stdout)
    if not answer.get("answered"):
        raise SystemExit(f"`verbatim ask` did not answer: {done.stdout}")
    return seconds, cpu, done.stderr


def top_imports(importtime_log: str, count: int) -> list[list[object]]:
    """The packages whose modules took longest to import (their own time, summed per top-level
    package, so `scipy` counts wherever it was pulled in from), from `-X importtime` output."""
    seconds: dict[str, float] = {}
    for line in importtime_log.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            package = match.group(2).split(".")[0]
            seconds[package] = seconds.get(package, 0.0) + int(match.group(1)) / 1e6
    return [[package, value] for package, value in sorted(seconds.items(), key=lambda item: -item[1])[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(f"Machine: {machine()}")
    folder = Path(tempfile.mkdtemp(prefix="verbatim-cold-"))
    try:
        env = prepare(folder)
        timed_ask(env, folder)  # warms the page cache, as a user's second run would find it
        times, cpu_times = [], []
        for run in range(args.runs):
            seconds, cpu, _ = timed_ask(env, folder)
            log(f"run {run + 1}: {seconds:.2f} s ({cpu:.2f} s of CPU)")
            times.append(seconds)
            cpu_times.append(cpu)
        _, _, importtime_log = timed_ask(env, folder, extra=["-X", "importtime"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nCold `verbatim ask --json {QUESTION!r}`, {args.runs} fresh processes "
          f"(load average {os.getloadavg()[0]:.1f} at the end):\n")
    # CPU time stands beside wall time: a busy machine inflates the one, hardly the other.
    print(table(["median s", "min s", "max s", "median CPU s"],
                [[median(times), min(times), max(times), median(cpu_times)]]))
    print(f"\nTop {args.top} packages by import time (one process under -X importtime):\n")
    print(table(["package", "seconds"], top_imports(importtime_log, args.top)))


if __name__ == "__main__":
    main()
