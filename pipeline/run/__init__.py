"""Stages 2 to 5 together: one run driven from plan to finished reports.

Owns the commands' library calls (start, resume, retry, submit, cancel, status, jobs), the run
context (settings, client, journal, ledger), the drive loop, the submitter with its daily
budget, the canary and the ceiling on jobs (``--canary``, ``--max-jobs``), the poller, the
progress output, the target (real service or embedded emulator), the per-run and per-workspace
locks, the damage checks of a run directory, the sweep of what killed processes left behind,
and recurring runs (the registry's catch-up, dedupe, the workspace dataset). Each command call
that runs an event loop has an ``*_async`` twin for callers that already run one
(:mod:`pipeline.run.aio`).

May import: kernel, api, input, journal, reports, handoff, emulator.
"""
