"""``python -m pipeline`` runs the dsar command line."""

import sys

from .cli import main

sys.exit(main())
