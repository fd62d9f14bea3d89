"""``python -m densitylab.cli``: the same as the ``densitylab`` command."""

from densitylab.cli import app

app()
