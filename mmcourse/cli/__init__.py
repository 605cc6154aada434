"""The command line: ``python -m mmcourse COMMAND`` (``mmcourse/__main__.py`` calls
``cli.main.main``); one module of commands per topic (``cli.commands_*``)."""
