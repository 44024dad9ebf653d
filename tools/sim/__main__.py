"""``python -m tools.sim``: the simulated end-to-end evaluation (see :mod:`tools.sim.run`)."""

import sys

from tools.sim.run import main

sys.exit(main())
