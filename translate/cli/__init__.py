"""The ``translate`` command line: thin typer commands over importable functions."""
