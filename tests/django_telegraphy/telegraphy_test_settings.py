"""Django settings of the Django app's tests (loaded by this directory's conftest)."""

SECRET_KEY = "django-telegraphy-tests"
DEBUG = False
USE_TZ = True
# Not UTC, so the tests see datetimes converted to UTC.
TIME_ZONE = "America/Argentina/Cordoba"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "telegraphy.contrib.django_telegraphy",
    "telegraphy_testapp",
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ROOT_URLCONF = "telegraphy_testapp.urls"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
ALLOWED_HOSTS = ["testserver", "example.com", "localhost", "127.0.0.1", "[::1]"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

TELEGRAPHY_SECRET = "django-telegraphy-tests-secret-0123456789"
# Nothing listens here: a test that forgets to capture or to point at a
# gateway fails fast instead of reaching someone's running gateway.
TELEGRAPHY_GATEWAY_URL = "http://127.0.0.1:9"
TELEGRAPHY_PUBLISH_RETRIES = 0
