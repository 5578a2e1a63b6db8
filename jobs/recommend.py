"""Ray job entrypoint: `python -m jobs.recommend --run ... --in ... --out ...`."""

import sys

from jobs._entry import run_subcommand

if __name__ == "__main__":
    sys.exit(run_subcommand(["recommend"]))
