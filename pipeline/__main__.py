"""``python -m pipeline`` runs the dsar command line."""

from .cli.launch import run

run()
