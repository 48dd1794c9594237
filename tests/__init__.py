"""The dsar test suite. Its layout mirrors ``pipeline/``: ``tests/<package>`` tests
``pipeline/<package>`` (api, input, journal, run, reports, handoff, cli, emulator, bench), and the
root kernel (settings, layout) is tested at the top level. Three cross-cutting suites stay apart:
``reliability/`` (chaos, faults, signals), ``hostile/`` (a hostile input corpus) and ``privacy/``
(the leak scan). Shared helpers and fixtures live in ``tests/helpers/``; a conftest holds only its
directory's fixtures and is never imported by a test module (``tests/test_layout.py`` checks).
"""
