"""The Telegraphy demo: a Django project whose pages update live."""
