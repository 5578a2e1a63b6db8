"""Ray job entrypoint: `python -m jobs.train --run ... [--config ...]` runs `serec train`."""

import sys

from jobs._entry import run_subcommand

if __name__ == "__main__":
    sys.exit(run_subcommand(["train"]))
