"""The engine: async parts that observe, decide (through the core) and act; each owns one piece of state."""
