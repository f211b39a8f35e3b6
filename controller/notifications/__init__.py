"""Event notifications: targets, message formats, and the sender that drains the outbox."""
