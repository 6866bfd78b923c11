"""``python -m lbkit``: the command line."""

from lbkit.cli import main

raise SystemExit(main())
