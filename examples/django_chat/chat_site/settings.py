"""The whole configuration of the example: no database, no apps, one template directory."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

# Example defaults: set DJANGO_SECRET_KEY and DJANGO_DEBUG=0 before exposing this anywhere.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "chat_site.urls"
WSGI_APPLICATION = "chat_site.wsgi.application"
DATABASES: dict = {}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates",
              "DIRS": [BASE_DIR / "templates"], "APP_DIRS": False, "OPTIONS": {}}]
USE_TZ = True

# The model the views use; its key and base URL come from the provider's usual variables
# (OPENAI_API_KEY, OPENAI_BASE_URL, ...). mock/echo is the offline provider: no key needed.
CHAT_MODEL = os.environ.get("CHAT_MODEL", "mock/echo")
