"""Instant messaging: the message formats a conference relays (pure; no I/O)."""
