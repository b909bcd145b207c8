"""Telegraphy: real-time events for Django and any WSGI Python web app."""

__version__ = "0.1.0"
__all__ = ["__version__"]
