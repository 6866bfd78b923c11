"""The ``lbkit`` command line's subcommands, one module each (the entry point is lbkit.cli)."""
