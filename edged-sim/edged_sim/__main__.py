"""``python -m edged_sim``: the simulated end-to-end evaluation (see :mod:`edged_sim.run`)."""

import sys

from edged_sim.run import main

sys.exit(main())
