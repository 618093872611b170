"""The voice tracking operator."""
