"""Ray job entrypoint: `python -m jobs.tune --run ... [--config ...]` runs `serec tune`."""

import sys

from jobs._entry import run_subcommand

if __name__ == "__main__":
    sys.exit(run_subcommand(["tune"]))
