"""Worker A/B: the same published backlog drained by the workers of several checkouts, in turn.

The worker's CPU per record moves with what else runs on the machine, so a change to it is
measured against its base in the same minutes: the backlog of bench/ingest.py (its records,
as 500-record arrays and as one record per message) is published once, then each round
drains it with each checkout's worker (``CHECKOUT/.venv/bin/agentstream worker``, its own
installed and compiled code) into a fresh database under a fresh consumer group, arrays (c)
then one record per message (d), as bench/ingest.py's ``drain`` measures them: rows/s and
the worker's process CPU per record from the first committed row to the last. Prints one
JSON line per drain, then the medians per checkout and shape.

    .venv/bin/python bench/worker_ab.py --rounds 5 /path/to/base /path/to/branch
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from agentstream.contract.settings import Settings
from agentstream.streams.runner import ensure_topics

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # bench/ is not a package: ingest.py's generator, publisher and drain


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("checkouts", nargs="+", type=Path, help="worktrees with a .venv")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 300k events")
    args = parser.parse_args()
    base = Settings()
    scratch = ingest.Scratch(base)
    workdir = Path(f"/tmp/bench-worker-ab-{uuid.uuid4().hex[:6]}")
    workdir.mkdir()
    cpu: dict[tuple[str, str], list[float]] = {}
    try:
        data = ingest.generate(int(300_000 * args.scale))
        total = sum(len(v) for v in data.values())
        shapes = {
            "c": base.model_copy(update={"topic_prefix": scratch.prefix()}),
            "d": base.model_copy(update={"topic_prefix": scratch.prefix()}),
        }
        for shape, per_message in (("c", ingest.RECORDS_PER_MESSAGE), ("d", 0)):
            asyncio.run(ensure_topics(shapes[shape]))
            asyncio.run(ingest.publish_all(shapes[shape], data, per_message))
        del data
        n = 0
        for r in range(args.rounds):
            for checkout in args.checkouts:
                ingest.AGENTSTREAM = str(checkout.resolve() / ".venv" / "bin" / "agentstream")
                for shape, settings in shapes.items():
                    n += 1
                    load = os.getloadavg()[0]
                    d = ingest.drain(
                        settings, scratch.database(), total, workdir / f"{n}.log", group=f"g{n}"
                    )
                    cpu.setdefault((checkout.name, shape), []).append(d.cpu_us_per_record)
                    line = {
                        "round": r,
                        "checkout": checkout.name,
                        "shape": shape,
                        "rows_s": round(d.rate),
                        "cpu_us_per_record": round(d.cpu_us_per_record, 2),
                        "loadavg": round(load, 2),
                        "time": time.strftime("%H:%M:%S", time.gmtime()),
                    }
                    print(json.dumps(line), flush=True)
    finally:
        scratch.drop_all()
    medians = {f"{k[0]}/{k[1]}": round(statistics.median(v), 2) for k, v in sorted(cpu.items())}
    print(json.dumps({"bench": "worker_ab", "cpu_us_per_record_median": medians}))


if __name__ == "__main__":
    main()
