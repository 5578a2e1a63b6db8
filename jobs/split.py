"""Ray job entrypoint: `python -m jobs.split --run ... [--config ...]` runs `serec split`."""

import sys

from jobs._entry import run_subcommand

if __name__ == "__main__":
    sys.exit(run_subcommand(["split"]))
