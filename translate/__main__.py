"""``python -m translate``: the ``translate`` command (what ``torchrun -m translate`` runs)."""

from translate.cli.main import main

main()
