"""CLI verbs; each module defines ``register(app)`` and imports nothing heavy at module level."""
