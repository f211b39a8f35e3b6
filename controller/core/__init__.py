"""The pure core: what the controller decides, with no I/O.

Nothing here reads a clock, a socket, a file or the database, logs, or imports anyio, httpx or
SQLAlchemy: time, randomness and ids come in as arguments, so every rule is a table test
(``tests/core``). The edges (``store``, ``cloud``, ``reconcile``, ``service``, ``cli``) call in;
the core never calls out. ``tests/core/test_import_contract.py`` fails when that breaks.
"""
