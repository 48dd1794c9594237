"""The ``dsar`` command line: a thin skin over the library.

Parses arguments, loads settings, calls one library function per command and maps
:class:`~pipeline.errors.PipelineError` subclasses to the exit codes of DESIGN.md. One module
per command group; :mod:`pipeline.cli.launch` is the entry point, which takes over SIGINT
before anything heavy is imported.

May import: kernel, api, input, journal, reports, handoff, run, emulator, bench.
"""
