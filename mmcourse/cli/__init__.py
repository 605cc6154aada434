"""The command line: ``python -m mmcourse COMMAND`` (``mmcourse/__main__.py`` calls it)."""
