"""``python -m tmstream``: the same entry point as the console script."""

from tmstream.cli import main

main()
