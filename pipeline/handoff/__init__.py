"""Stage 5, reports to people: what a run hands to data and legal teams.

Owns report.html (its data, charts and page), manifest.json (checksums of every file), its
verification, and ``dsar export``. It reads only the report files of a run directory, never
the journal, so that a hand-off can be checked where dsar is not installed.

May import: kernel, reports.
"""
