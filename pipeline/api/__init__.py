"""The Privacy Service API: one client object and what it stands on.

Owns the HTTP side of dsar: the transport (the one place that catches aiohttp errors and
redacts what it logs), IMS authentication, the rate limiter, the retry policy, the wire shapes
of list queries and consent bodies, and the typed responses the client returns; and the
injectable clock that every stage below the CLI reads time from. Nothing here knows about
runs, journals or files.

May import: kernel.
"""
