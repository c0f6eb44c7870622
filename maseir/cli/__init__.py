"""The ``maseir`` command: one module per subcommand, wired up in ``main``."""
