"""Settings for the test suite: the real settings, with development secrets filled in.

Tests still run against real PostgreSQL and Redis: DATABASE_URL and REDIS_URL come from the
environment (`python3 dev.py test` starts embedded servers when they are not set).
"""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
# The sandboxes listen on 127.0.0.1 over plain http; SSRF tests narrow this to one port or to nothing.
os.environ.setdefault("OUTBOUND_ALLOWED_NETWORKS", "127.0.0.1")
os.environ.setdefault("OUTBOUND_ALLOW_HTTP", "1")

from config.settings import *

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests only
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
# Static files are served by the test client's finders; WhiteNoise would only warn that
# collectstatic has not run.
MIDDLEWARE = [m for m in MIDDLEWARE if m != "whitenoise.middleware.WhiteNoiseMiddleware"]
