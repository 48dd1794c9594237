"""Stage 4, journal to Parquet: the status, products and rejects reports of a run directory.

Owns the Parquet writers (atomic, fsynced), the file names and ``summary.json`` shape of a run
directory, and the regulation deadlines (SLA) that the reports and the hand-off show.

May import: kernel, api, input, journal.
"""
