"""``python -m childsafe`` runs the command line."""

from childsafe.cli import main

main()
