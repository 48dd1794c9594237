"""Stage 1, input to plan: read a file of data subjects and turn it into batches of requests.

Owns the sources (CSV, Parquet, the UI's JSON upload), the layout of identity columns, the
vectorised row rules and their reject codes, the merge of a subject's rows, the spill folders
that keep memory bounded, the batching into requests of at most 1000 users, the columnar
dedupe against a blocklist of earlier jobs, and the planning that ties them together. Nothing
here sends a request or writes a journal.

May import: kernel.
"""
