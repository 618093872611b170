"""The voice message status trigger."""
