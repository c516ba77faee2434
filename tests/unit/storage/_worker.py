"""Child process for the multi-process storage tests (not a test module).

usage: _worker.py GO_FILE URL add_entries LUT_NAME MODEL COUNT TAG
       _worker.py GO_FILE URL claim KIND DEVICE
Prints "ready" once connected, waits for GO_FILE to exist, then runs its operation and
prints one JSON result line.
"""

from __future__ import annotations

import json
import os
import sys
import time

from storage import Database, JobRepository, LutRepository

T = "t1"


def main() -> None:
    go_file, url, op, *args = sys.argv[1:]
    db = Database(url)
    with db.engine.connect():  # open a pooled connection now, not after the start signal
        pass
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            sys.exit("no start signal")
        time.sleep(0.002)
    if op == "add_entries":
        lut_name, model, count, tag = args
        repo = LutRepository(db)
        versions = [
            repo.add_entry(
                T, lut_name, model, f"{tag}-{i}", f"{tag}-{i}".encode(), payload_format="raw"
            ).version.version
            for i in range(int(count))
        ]
        print(json.dumps(versions))
    elif op == "claim":
        kind, device = args
        jobs = JobRepository(db)
        claimed = []
        while (job := jobs.claim_next(kind, device)) is not None:
            claimed.append(job.job_id)
        print(json.dumps(claimed))
    else:
        sys.exit(f"unknown op {op}")
    db.dispose()


if __name__ == "__main__":
    main()
