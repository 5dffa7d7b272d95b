"""What starting Ray costs here: a local cluster, and the training actors of `RayBackend`.

Each repeat runs in a fresh process (Ray keeps one cluster per process): `import ray`,
`ray.init(include_dashboard=False, num_cpus=..., _temp_dir=...)` of a local cluster bound to
127.0.0.1, `--actors` `TeachActor`s started at once until each has loaded the model (the tiny
LLaVA by default: importing torch and transformers in a new process is most of it), and
`ray.shutdown()`. Printed as a markdown table of seconds per repeat, and the median. A tiny model
is built once before the repeats, so they time loading it, as a running app's actors would.

    python benchmarks/ray_start.py                 # 3 repeats, 2 CPUs, 2 actors of the tiny model
    python benchmarks/ray_start.py --repeats 1 --actors 0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from store_latency import machine
from yollava_agent.loading import load_llava

ONE_REPEAT = """
import json, os, sys, tempfile, time
start = time.perf_counter()
import ray
imported = time.perf_counter()
temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
ray.init(num_cpus=int(sys.argv[1]), include_dashboard=False, _temp_dir=temp, log_to_driver=False)
initialised = time.perf_counter()
from yollava_agent.tools.ray_backend import TeachActor
actor = ray.remote(TeachActor).options(num_cpus=1, max_concurrency=4)
actors = [actor.remote(sys.argv[2], "cpu", "fp32", 1) for _ in range(int(sys.argv[3]))]
ray.get([a.describe.remote() for a in actors])
ready = time.perf_counter()
ray.shutdown()
stopped = time.perf_counter()
import shutil; shutil.rmtree(temp, ignore_errors=True)
print(json.dumps({"import": imported - start, "init": initialised - imported,
                  "actors": ready - initialised, "shutdown": stopped - ready}))
"""
PHASES = ("import", "init", "actors", "shutdown")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local cluster")
    parser.add_argument("--actors", type=int, default=2, help="TeachActors to start at once")
    parser.add_argument("--model", default="tiny", help="the actors' model")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    home = tempfile.mkdtemp(prefix="yollava-ray-start-")
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # a one-machine cluster on 127.0.0.1
        "HF_HUB_OFFLINE": "1",
        "YOLLAVA_HOME": os.environ.get("YOLLAVA_HOME", os.path.join(home, "yollava")),
    }
    rows = []
    try:
        os.environ["YOLLAVA_HOME"] = env["YOLLAVA_HOME"]
        load_llava(args.model, "cpu", "fp32")  # a tiny model is built once, before the repeats
        for _ in range(args.repeats):
            settings = [str(args.cpus), args.model, str(args.actors)]
            command = [sys.executable, "-c", ONE_REPEAT, *settings]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"| repeat | {' | '.join(f'{p} s' for p in PHASES)} | total s |")
    print("| ---: |" + " ---: |" * (len(PHASES) + 1))
    for i, row in enumerate(rows, start=1):
        print(f"| {i} | {' | '.join(f'{row[p]:.1f}' for p in PHASES)} | {sum(row.values()):.1f} |")
    medians = {p: statistics.median(r[p] for r in rows) for p in PHASES}
    middle = " | ".join(f"{medians[p]:.1f}" for p in PHASES)
    print(f"| median | {middle} | {sum(medians.values()):.1f} |")
    print(
        f"\nA local cluster of {args.cpus} CPUs; {args.actors} actor(s) of {args.model} loading at "
        f"once. {machine(load)}"
    )


if __name__ == "__main__":
    main()
