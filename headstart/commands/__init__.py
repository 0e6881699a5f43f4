"""The `headstart` subcommands, one module per resource; `headstart.cli` assembles them."""
