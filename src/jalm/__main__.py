"""`python -m jalm ...`: the same as the `jalm` command (e.g. `python -X importtime -m jalm clean ...`)."""

import sys

from jalm.cli import main

sys.exit(main())
