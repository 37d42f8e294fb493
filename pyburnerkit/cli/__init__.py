"""The ``pyburnerkit`` command: one module per subcommand group, plugged into :mod:`.main`."""
