"""The demo app: items that change live on every open page."""
