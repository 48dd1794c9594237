"""Tests of pipeline/cli: the commands, their help, settings errors and exit codes."""
