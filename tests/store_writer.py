"""A process that writes to a tracking store without pause until SIGINT or SIGTERM, then ends its run KILLED.

It ends each run the way a tracked run does (:meth:`TrackedRun._interrupted`) and prints one
line on standard error, then starts the next run, ``n_runs`` in all. Started by
tests/test_interrupt_shield.py: nearly every signal it gets lands inside a write to the store.
Standard output says ``writing`` when a run has started and ``ended`` when it has ended.
Usage: ``python tests/store_writer.py <tracking uri> <n_runs>``.
"""

import sys

from avalanche_ext.logging import MLflowLogger
from avalanche_ext.logging.shield import shielded
from avalanche_ext.runner.interrupt import RunInterrupted, ignore_interrupts, interrupts_raise


def write_until_stopped(uri: str, name: str) -> None:
    with interrupts_raise():
        logger, step = None, 0
        try:
            with shielded():
                logger = MLflowLogger("writer", name, uri)
            print("writing", flush=True)
            while True:
                logger.log_metric("m", float(step), step)
                logger.flush()
                logger.heartbeat(force=True)
                step += 1
        except RunInterrupted as stop:
            ignore_interrupts()
            logger.set_tag("killed_reason", f"interrupted by {stop.why}")
            logger.close("KILLED")
            print(f"{name} stopped by {stop.why} after {step} steps", file=sys.stderr, flush=True)
    print("ended", flush=True)


if __name__ == "__main__":
    for i in range(int(sys.argv[2])):
        write_until_stopped(sys.argv[1], f"run{i}")
