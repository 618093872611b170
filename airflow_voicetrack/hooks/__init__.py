"""The voice tracking hooks."""
