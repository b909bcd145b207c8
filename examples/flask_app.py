"""A Flask app that publishes Telegraphy events through the framework-agnostic Publisher.

Run a gateway and this app with the same secret::

    export TELEGRAPHY_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
    python -m telegraphy.tornado_gateway --port 9000 &
    flask --app examples/flask_app.py run --port 5000

    curl -X POST localhost:5000/messages -H 'Content-Type: application/json' -d '{"text": "hello"}'

Every POSTed message is published on the topic ``chat.lobby``; a browser
running the Telegraphy client sees it with
``Telegraphy.register('chat.lobby', fn)``.

One Publisher serves the whole process: it is thread-safe and keeps one
keep-alive connection per thread, so it suits Flask's threaded server and
gunicorn's threaded workers alike.
"""

from __future__ import annotations

import atexit
import os

from flask import Flask, abort, jsonify, request

from telegraphy.event import make_event
from telegraphy.publisher import GatewayUnavailable, Publisher, PublishRejected

app = Flask(__name__)

publisher = Publisher(
    os.environ.get("TELEGRAPHY_GATEWAY_URL", "http://127.0.0.1:9000"),
    os.environ["TELEGRAPHY_SECRET"],
    timeout=2,
    retries=2,
)
atexit.register(publisher.close)


@app.post("/messages")
def post_message():
    """Publish the posted ``{"text": ...}`` as a ``chat.lobby`` event; answer with its id."""
    payload = request.get_json(silent=True) or {}
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        abort(400, description="send a JSON object with a non-empty 'text'")
    event = make_event("chat.lobby", {"text": text, "author": payload.get("author", "anonymous")}, "message")
    try:
        (event_id,) = publisher.publish(event)
    except PublishRejected as exc:  # our mistake (bad secret, event too large): not worth retrying
        app.logger.error("gateway refused the event: %s", exc)
        return jsonify(error="rejected", detail=str(exc)), 502
    except GatewayUnavailable as exc:
        app.logger.error("%s", exc)
        return jsonify(error="gateway_unavailable"), 503
    return jsonify(id=event_id), 201


@app.post("/messages/bulk")
def post_messages():
    """Publish a JSON list of texts in one request to the gateway, using a batch."""
    texts = request.get_json(silent=True)
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        abort(400, description="send a JSON array of strings")
    with publisher.batch() as batch:
        for text in texts:
            publisher.publish(make_event("chat.lobby", {"text": text}, "message"))
    return jsonify(ids=batch.ids), 201


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "5000")))
