"""``python -m edged_platform.search``: the ``edged-search`` command."""

from edged_platform.search.cli import main

raise SystemExit(main())
