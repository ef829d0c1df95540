"""``python -m mlplan``: the same entry point as the ``mlplan`` console script."""

from mlplan.cli import main

main()
