"""The voice message status sensor."""
