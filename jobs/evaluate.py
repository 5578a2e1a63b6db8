"""Ray job entrypoint: `python -m jobs.evaluate --run ... [--config ...]` runs `serec evaluate`."""

import sys

from jobs._entry import run_subcommand

if __name__ == "__main__":
    sys.exit(run_subcommand(["evaluate"]))
