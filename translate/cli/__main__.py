"""``python -m translate.cli``: the same as the ``translate`` command."""

from translate.cli.main import main

main()
