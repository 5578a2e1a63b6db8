"""Ray job entrypoint: `python -m jobs.features --run ... [--config ...]` runs `serec features`."""

import sys

from jobs._entry import run_subcommand

if __name__ == "__main__":
    sys.exit(run_subcommand(["features"]))
