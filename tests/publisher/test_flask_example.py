"""examples/flask_app.py publishes through the Publisher to a real gateway."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

flask = pytest.importorskip("flask")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask_app.py"


@pytest.fixture
def flask_client(gateway, monkeypatch):
    """The example app, configured for a real gateway, as a Flask test client."""
    monkeypatch.setenv("TELEGRAPHY_SECRET", gateway.secret)
    monkeypatch.setenv("TELEGRAPHY_GATEWAY_URL", gateway.url)
    spec = importlib.util.spec_from_file_location("flask_example_app", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module.app.test_client()
    module.publisher.close()


def test_post_message_publishes_and_returns_the_id(flask_client):
    """POST /messages answers 201 with the id the gateway assigned."""
    response = flask_client.post("/messages", json={"text": "hello"})
    assert response.status_code == 201
    assert response.get_json()["id"]


def test_bulk_messages_return_one_id_each(flask_client):
    """POST /messages/bulk publishes every text in one batch."""
    response = flask_client.post("/messages/bulk", json=["a", "b", "c"])
    assert response.status_code == 201
    assert len(response.get_json()["ids"]) == 3


def test_empty_message_is_refused(flask_client):
    """A message without text is a 400 and publishes nothing."""
    assert flask_client.post("/messages", json={}).status_code == 400
