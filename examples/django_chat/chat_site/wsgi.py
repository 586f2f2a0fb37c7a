"""``gunicorn -k gthread --threads 8 chat_site.wsgi`` (run from examples/django_chat)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_site.settings")
application = get_wsgi_application()
