"""``python -m rtqa`` runs the command line."""

from rtqa.cli import main

main()
