"""The engine: async parts that observe, decide (through the core) and act.

Each module owns one piece of state and is its only writer; ``engine.py`` wires them.
"""
