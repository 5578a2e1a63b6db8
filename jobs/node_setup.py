"""Per-node set-up (cluster.yaml setup_commands): `python -m jobs.node_setup --sgmse-src DIR`."""

import sys

from serec.cluster.node_setup import main

if __name__ == "__main__":
    sys.exit(main())
