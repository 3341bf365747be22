"""aipc — can your large-model work run on an AI PC, how fast, and at what cost against the cloud."""

__version__ = "0.1.0"
