"""``python -m lazysi``: the command line (see :mod:`lazysi.cli`)."""
from lazysi.cli import main

raise SystemExit(main())
