"""Ray job entrypoint: `python -m jobs.label --run ... [--config ...]` runs `serec label`."""

import sys

from jobs._entry import run_subcommand

if __name__ == "__main__":
    sys.exit(run_subcommand(["label"]))
