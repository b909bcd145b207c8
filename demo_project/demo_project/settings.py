"""Settings of the Telegraphy demo.

Everything a run may need to change comes from the environment:

=========================  ==========================================  ==================================
Variable                   Default                                     Meaning
=========================  ==========================================  ==================================
``DJANGO_DEBUG``           ``1``                                       ``0`` turns DEBUG off
``DJANGO_SECRET_KEY``      a development key                           Django's SECRET_KEY
``DEMO_DATABASE``          ``demo_project/db.sqlite3``                 the SQLite file
``TELEGRAPHY_SECRET``      a development secret                        shared with the gateway
``TELEGRAPHY_GATEWAY_URL`` ``http://127.0.0.1:9000``                   where Django publishes
``TELEGRAPHY_WS_PORT``     ``9000``                                    port browsers connect to
``DEMO_ALLOWED_HOSTS``     (none)                                      extra ALLOWED_HOSTS, comma-separated
=========================  ==========================================  ==================================
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "1").lower() not in ("0", "false", "no", "off", "")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "telegraphy-demo-not-secret-do-not-deploy")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"] + [
    host.strip() for host in os.environ.get("DEMO_ALLOWED_HOSTS", "").split(",") if host.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "telegraphy.contrib.django_telegraphy",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
WSGI_APPLICATION = "demo_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",  # {% telegraphy_scripts %} reads it
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DATABASE") or BASE_DIR / "db.sqlite3",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "/static/"

# -- Telegraphy --------------------------------------------------------------------------------
TELEGRAPHY_SECRET = os.environ.get("TELEGRAPHY_SECRET", "telegraphy-demo-secret-not-for-production-0123456789")
TELEGRAPHY_GATEWAY_URL = os.environ.get("TELEGRAPHY_GATEWAY_URL", "http://127.0.0.1:9000")
TELEGRAPHY_WS_PORT = int(os.environ.get("TELEGRAPHY_WS_PORT", "9000"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"telegraphy": {"handlers": ["console"], "level": "INFO"}},
}
