"""The desired-state store: schema, engine, migrations and the intent-named operations."""
