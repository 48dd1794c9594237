"""The run's durable memory: one SQLite journal per run, the workspace's daily ledger, and the
workspace registry of submitted jobs (an index derived from the journals, for dedupe).

Owns the schema and its migrations, the batch and job state machines (one short transaction per
legal transition), the planning record that lets a killed planning restart, the run's intent
(live, preview, declined, cancelled), the canary's verdict, the queries the reports read, and
the ledger of jobs submitted per day. It reads the input's spill partitions when it writes a
plan.

May import: kernel, input.
"""
