"""``python -m serec`` runs the command line."""

import sys

from serec.cli import main

sys.exit(main())
