"""``python -m pipeline`` runs the dsar command line."""

from .launch import run

run()
