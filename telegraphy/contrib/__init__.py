"""Integrations of Telegraphy with web frameworks (the Django app lives here)."""
