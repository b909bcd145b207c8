"""{% telegraphy_scripts %}: the client's configuration and script, for any request."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.template import Context, Template
from django.test import RequestFactory

from telegraphy.contrib.django_telegraphy.client import client_config, script_json, websocket_url
from telegraphy.contrib.django_telegraphy.templatetags.telegraphy_tags import sockjs_url
from telegraphy.tokens import verify_connect_token

SECRET = "django-telegraphy-tests-secret-0123456789"


def render(request=None, **context):
    """Render the tag with ``request`` in the context (or without one)."""
    if request is not None:
        context["request"] = request
    return Template("{% load telegraphy_tags %}{% telegraphy_scripts %}").render(Context(context))


def config_of(html):
    """Return the TELEGRAPHY_CONFIG object written in ``html``."""
    match = re.search(r"<script>window\.TELEGRAPHY_CONFIG = (.*?);</script>", html)
    assert match, html
    return json.loads(match.group(1))


def get(path="/", user=None, secure=False, host="example.com"):
    request = RequestFactory().get(path, secure=secure, HTTP_HOST=host)
    request.user = user if user is not None else AnonymousUser()
    return request


def test_tag_emits_config_and_client_script():
    """The tag writes the config script and the static client's script element."""
    html = render(get())
    assert '<script src="/static/telegraphy/telegraphy.js"></script>' in html
    assert set(config_of(html)) == {"url", "realm", "token", "authid", "sockjsUrl", "sockjsScriptUrl"}


def test_anonymous_user_gets_no_token():
    """An anonymous visitor gets token and authid null."""
    config = config_of(render(get()))
    assert config["token"] is None and config["authid"] is None
    assert config["realm"] == "telegraphy"


def test_authenticated_user_gets_a_connect_token():
    """A signed-in user gets a connect token for their pk, valid for TELEGRAPHY_CONNECT_TOKEN_TTL."""
    user = User(pk=42, username="ann")
    config = config_of(render(get(user=user)))
    assert config["authid"] == "42"
    claims = verify_connect_token(config["token"], SECRET)
    assert claims["sub"] == "42"
    assert claims["exp"] - claims["iat"] == 300


def test_connect_token_ttl_setting(settings):
    """TELEGRAPHY_CONNECT_TOKEN_TTL sets the token's lifetime."""
    settings.TELEGRAPHY_CONNECT_TOKEN_TTL = 30
    claims = verify_connect_token(config_of(render(get(user=User(pk=1))))["token"], SECRET)
    assert claims["exp"] - claims["iat"] == 30


def test_url_follows_the_request_host_and_scheme():
    """Without settings, ws:// or wss:// follows the request, on the request's host name and port 9000."""
    assert config_of(render(get(host="example.com:8000")))["url"] == "ws://example.com:9000/ws"
    assert config_of(render(get(secure=True, host="example.com")))["url"] == "wss://example.com:9000/ws"


def test_is_secure_setting_overrides_the_request(settings):
    """TELEGRAPHY_IS_SECURE forces the scheme whatever the request says."""
    settings.TELEGRAPHY_IS_SECURE = True
    assert websocket_url(get()).startswith("wss://")
    settings.TELEGRAPHY_IS_SECURE = False
    assert websocket_url(get(secure=True)).startswith("ws://")


def test_host_port_and_path_settings(settings):
    """TELEGRAPHY_WS_HOST, _WS_PORT and _WS_PATH build the URL."""
    settings.TELEGRAPHY_WS_HOST = "rt.example.com"
    settings.TELEGRAPHY_WS_PORT = 443
    settings.TELEGRAPHY_WS_PATH = "wamp"
    assert websocket_url(get(secure=True)) == "wss://rt.example.com:443/wamp"
    settings.TELEGRAPHY_WS_PORT = None
    assert websocket_url(get(secure=True)) == "wss://rt.example.com/wamp"


def test_ws_url_setting_wins(settings):
    """TELEGRAPHY_WS_URL is used as it is."""
    settings.TELEGRAPHY_WS_URL = "wss://push.example.com/socket"
    settings.TELEGRAPHY_WS_HOST = "ignored"
    assert config_of(render(get()))["url"] == "wss://push.example.com/socket"


def test_ipv6_request_host_is_bracketed():
    """An IPv6 request host keeps its brackets in the URL."""
    assert websocket_url(get(host="[::1]:8000")) == "ws://[::1]:9000/ws"


def test_realm_setting(settings):
    """TELEGRAPHY_REALM is passed to the client."""
    settings.TELEGRAPHY_REALM = "shop"
    assert config_of(render(get()))["realm"] == "shop"


def test_renders_without_a_request():
    """Without request in the context the page renders, anonymous, on localhost."""
    config = config_of(render())
    assert config == {
        "url": "ws://localhost:9000/ws",
        "realm": "telegraphy",
        "token": None,
        "authid": None,
        "sockjsUrl": "http://localhost:9000/sockjs",
        "sockjsScriptUrl": "/static/telegraphy/vendor/sockjs.min.js",
    }


def test_without_request_uses_the_context_user():
    """Without a request, the context's user (auth context processor) gets the token."""
    assert config_of(render(user=User(pk=7)))["authid"] == "7"


def test_disallowed_host_still_renders():
    """A request for a host outside ALLOWED_HOSTS does not break the tag."""
    assert config_of(render(get(host="evil.invalid")))["url"] == "ws://localhost:9000/ws"


def test_missing_secret_renders_anonymously(settings, caplog):
    """Without TELEGRAPHY_SECRET a signed-in user's page renders without a token, and it is logged."""
    settings.TELEGRAPHY_SECRET = None
    config = config_of(render(get(user=User(pk=1))))
    assert config["token"] is None
    assert "TELEGRAPHY_SECRET" in caplog.text


def test_gateway_down_still_renders(settings, closed_port_url):
    """Rendering never contacts the gateway."""
    settings.TELEGRAPHY_GATEWAY_URL = closed_port_url
    assert config_of(render(get(user=User(pk=1))))["token"]


def test_config_is_escaped_for_a_script_element(settings):
    """<, > and & in the config cannot close the script element."""
    settings.TELEGRAPHY_REALM = "</script><script>alert(1)</script>&"
    html = render(get())
    assert "</script><script>alert" not in html
    assert config_of(html)["realm"] == "</script><script>alert(1)</script>&"


def test_script_json_escapes_line_separators():
    """U+2028 and U+2029 are escaped too."""
    assert script_json({"a": "\u2028\u2029<>&"}) == '{"a":"\\u2028\\u2029\\u003C\\u003E\\u0026"}'


def test_config_tag_gives_the_dict():
    """{% telegraphy_config as c %} exposes the config to custom markup."""
    html = Template("{% load telegraphy_tags %}{% telegraphy_config as c %}{{ c.realm }}|{{ c.url }}").render(
        Context({"request": get()})
    )
    assert html == "telegraphy|ws://example.com:9000/ws"


@pytest.mark.django_db
def test_rendered_through_a_view(client):
    """A view rendering the tag with the request context processor works end to end."""
    user = User.objects.create_user("bob", password="pw")
    client.force_login(user)
    response = client.get("/page/", HTTP_HOST="localhost:8000")
    config = config_of(response.content.decode())
    assert config["url"] == "ws://localhost:9000/ws"
    assert config["authid"] == str(user.pk)


def test_sockjs_url_follows_the_websocket_url():
    """sockjsUrl is the WebSocket URL with http(s) and path /sockjs: same host, port and scheme choice."""
    assert config_of(render(get(host="example.com:8000")))["sockjsUrl"] == "http://example.com:9000/sockjs"
    assert config_of(render(get(secure=True)))["sockjsUrl"] == "https://example.com:9000/sockjs"
    assert sockjs_url(get(host="[::1]:8000")) == "http://[::1]:9000/sockjs"


def test_sockjs_url_follows_ws_settings(settings):
    """TELEGRAPHY_WS_HOST/_PORT/_IS_SECURE and TELEGRAPHY_WS_URL shape the derived SockJS URL too."""
    settings.TELEGRAPHY_WS_HOST = "rt.example.com"
    settings.TELEGRAPHY_WS_PORT = None
    settings.TELEGRAPHY_IS_SECURE = True
    assert sockjs_url(get()) == "https://rt.example.com/sockjs"
    settings.TELEGRAPHY_WS_URL = "wss://push.example.com/realtime/ws"
    assert sockjs_url(get()) == "https://push.example.com/realtime/sockjs"


def test_sockjs_url_setting_wins(settings):
    """TELEGRAPHY_SOCKJS_URL is used as it is."""
    settings.TELEGRAPHY_SOCKJS_URL = "https://fallback.example.com/sj"
    settings.TELEGRAPHY_WS_URL = "wss://push.example.com/socket"
    config = config_of(render(get()))
    assert config["sockjsUrl"] == "https://fallback.example.com/sj"
    assert config["url"] == "wss://push.example.com/socket"


def test_sockjs_script_url_is_the_vendored_static_file(settings):
    """sockjsScriptUrl is {% static 'telegraphy/vendor/sockjs.min.js' %}, following STATIC_URL; the file ships."""
    settings.STATIC_URL = "https://cdn.example.com/assets/"
    config = config_of(render(get()))
    assert config["sockjsScriptUrl"] == "https://cdn.example.com/assets/telegraphy/vendor/sockjs.min.js"
    from django.contrib.staticfiles import finders

    found = finders.find("telegraphy/vendor/sockjs.min.js")
    assert found, "the vendored sockjs-client is not among the static files"
    with open(found, encoding="utf-8") as script:
        assert script.read(80).startswith("/* sockjs-client v1.6.")


def test_config_tag_has_the_sockjs_fields():
    """{% telegraphy_config %} gives sockjsUrl and sockjsScriptUrl as well."""
    html = Template(
        "{% load telegraphy_tags %}{% telegraphy_config as c %}{{ c.sockjsUrl }}|{{ c.sockjsScriptUrl }}"
    ).render(Context({"request": get()}))
    assert html == "http://example.com:9000/sockjs|/static/telegraphy/vendor/sockjs.min.js"


def test_client_config_takes_an_explicit_user():
    """client_config(request, user=...) mints for the given user."""
    assert client_config(None, user=User(pk=3))["authid"] == "3"
