"""Ray job entrypoint: `python -m jobs.pipeline --run ... [--config ...]` runs `serec pipeline`."""

import sys

from jobs._entry import run_subcommand

if __name__ == "__main__":
    sys.exit(run_subcommand(["pipeline"]))
