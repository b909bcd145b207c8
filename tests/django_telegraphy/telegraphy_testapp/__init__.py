"""Models and event classes used by the Django app's tests."""
