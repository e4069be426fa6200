"""One flat settings file, read from the environment (see docs/operations.md for every variable).

DEBUG=1 gives a developer defaults for the secrets; without it every secret must be provided.
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_networks, env_str
from integrations.connectors.registry import PARTNER_APPS
from integrations.outbound import parse_allow_list

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

# Development-only fallbacks: loud names so they are never mistaken for real secrets. DEBUG=1 may use
# them (with a warning from `manage.py check`, see config.checks); DEBUG off refuses them outright,
# whether missing or given explicitly.
_DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-0123456789abcdefghijklmnop"
_DEV_FIELD_KEY = "ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXktMDA="  # base64 of 32 bytes

SECRET_KEY = env_str("SECRET_KEY", default=_DEV_SECRET_KEY) if DEBUG else env_str("SECRET_KEY")

# Newest key first. Rotation: prepend a new key, run `manage.py rotate_encryption_keys`, drop the old.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", default=[_DEV_FIELD_KEY] if DEBUG else None)
if not FIELD_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "The environment variable FIELD_ENCRYPTION_KEYS (or FIELD_ENCRYPTION_KEYS_FILE) is required: "
        "a comma-separated list of Fernet keys, newest first."
    )
USES_DEVELOPMENT_KEYS = sorted(
    name
    for name, used in (
        ("SECRET_KEY", SECRET_KEY == _DEV_SECRET_KEY),
        ("FIELD_ENCRYPTION_KEYS", _DEV_FIELD_KEY in FIELD_ENCRYPTION_KEYS),
    )
    if used
)
if USES_DEVELOPMENT_KEYS and not DEBUG:
    raise ImproperlyConfigured(
        f"{' and '.join(USES_DEVELOPMENT_KEYS)} hold the public development value, which only DEBUG=1 may use. "
        "Generate real ones (see docs/operations.md, Settings)."
    )

for _index, _key in enumerate(FIELD_ENCRYPTION_KEYS):
    try:
        Fernet(_key)
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEYS item {_index + 1} is not a Fernet key (32 url-safe base64-encoded bytes; "
            "make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
        ) from None

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else None)
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("The environment variable ALLOWED_HOSTS is required (comma-separated host names).")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", default=[])
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "testserver"}
if USES_DEVELOPMENT_KEYS and set(ALLOWED_HOSTS) - _LOOPBACK_HOSTS:
    # DEBUG=1 answering a real host name is a production instance in all but name: the public
    # development keys would sign its sessions and encrypt its partners' secrets.
    raise ImproperlyConfigured(
        f"ALLOWED_HOSTS names {', '.join(sorted(set(ALLOWED_HOSTS) - _LOOPBACK_HOSTS))}, but "
        f"{' and '.join(USES_DEVELOPMENT_KEYS)} hold the public development value: set real ones."
    )

INSTALLED_APPS = [
    "unfold",
    "unfold.contrib.filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "workspaces",
    "integrations",
    "integrations.inbound",
    "integrations.sources",
    "integrations.delivery",
    "audiences",
    "retention",
    "campaigns",
    *PARTNER_APPS,  # the partners' own apps (integrations.connectors.registry): models, tasks, pages, API
    "console",
    "demo",
]

MIDDLEWARE = [
    "config.request_id.RequestIdMiddleware",
    "config.bad_input.RefuseUnstorableParameters",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "workspaces.middleware.CurrentWorkspaceMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            # when/clock/day/ago on every page: one way to write a moment (console.timefmt)
            "builtins": ["console.templatetags.console_time", "console.templatetags.console_words"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "workspaces.context_processors.workspace",
                "console.nav.navigation",
            ],
        },
    },
]

_database_url = env_str("DATABASE_URL")
try:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
except (ValueError, KeyError, TypeError) as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is malformed: {exc}") from None
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point to PostgreSQL (postgres:// or postgresql://).")
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# DATABASE_URL points at a pooler in transaction mode (PgBouncer pool_mode=transaction): a server-side
# cursor would be declared on one server connection and fetched from another (docs/deployment.md).
# psycopg 3 prepared statements are already off: Django sets prepare_threshold=None by default.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DB_TRANSACTION_POOLING", False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured("REDIS_URL must start with redis://, rediss:// or unix:// (a socket path).")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# --- Sign-in throttling (django-axes): per account and per address, whichever trips first ---------
# Every sign-in goes through authenticate(): the console's /login/, the admin's and any other
# LoginView; the API has no password login of its own (keys, or the console's session).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)  # failures within the cool-off, then locked
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15))  # since the last failure
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each counts on its own
# A success does not wipe failures: with per-address counting it would wipe the failures of every
# account tried from that address, so an attacker with one account of their own could reset them.
AXES_RESET_ON_SUCCESS = False
AXES_DISABLE_ACCESS_LOG = True  # successful sign-ins are not logged (User.last_login records them)
AXES_LOCKOUT_CALLABLE = "console.views.auth.locked_out"
AXES_CLIENT_IP_CALLABLE = "config.client_ip.client_ip"
AXES_ENABLE_ADMIN = False  # workspaces/admin.py registers the attempts in the unfold admin, to unlock


# The admin (django-unfold) wears the console's brand: its name, mark and blue, a way back to the
# console, and the zone its times are in (the workspace's, as in the console: workspaces.middleware).
def _admin_zone(request) -> str:
    from django.utils import timezone

    return f"Admin · times in {timezone.get_current_timezone_name()}"


def _console_mark(request) -> str:
    from django.templatetags.static import static

    return static("console/favicon.svg")


UNFOLD = {
    "SITE_TITLE": "Cohort Console admin",
    "SITE_HEADER": "Cohort Console",
    "SITE_SUBHEADER": _admin_zone,
    "SITE_URL": "/",
    "SITE_ICON": _console_mark,
    "SITE_FAVICONS": [{"rel": "icon", "type": "image/svg+xml", "href": _console_mark}],
    "SITE_DROPDOWN": [
        {"icon": "dashboard", "title": "Open the console", "link": "/"},
        {"icon": "group_work", "title": "Segments", "link": "/segments/"},
        {"icon": "sync", "title": "Syncs", "link": "/syncs/"},
    ],
    "COLORS": {
        "primary": {  # the console's accent, #3a5bd9, in shades
            "50": "oklch(97% .014 264)",
            "100": "oklch(93.2% .032 264)",
            "200": "oklch(88.2% .059 264)",
            "300": "oklch(80.9% .105 264)",
            "400": "oklch(70.7% .155 264)",
            "500": "oklch(60% .19 266)",
            "600": "oklch(52.5% .2 267)",
            "700": "oklch(46% .19 267)",
            "800": "oklch(40% .16 267)",
            "900": "oklch(34% .12 267)",
            "950": "oklch(26% .08 267)",
        },
    },
}
# Proxies in front of gunicorn that append the client's address to X-Forwarded-For (0: none, the
# peer's address is the client's). Used for per-address sign-in throttling.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:dashboard"
LOGOUT_REDIRECT_URL = "console:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security: `manage.py check --deploy` is clean when DEBUG is off. -----------------------------
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# /healthz and /metrics are probed over plain HTTP by load balancers and Prometheus: never redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.logging.SecretSafeExceptionReporterFilter"

# --- Email (destination health notices) ------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", default="Cohort Console <noreply@localhost>")

# --- REST API ----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "integrations.api_auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["integrations.api_auth.ManagementAccess"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Deep nesting, NUL and lone surrogates in any JSON body answer 400 naming the field, not 500.
    "DEFAULT_PARSER_CLASSES": [
        "config.safe_json.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "integrations.api_errors.json_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "config.pagination.IdCursorPagination",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cohort Console management API",
    "DESCRIPTION": "Manage workspaces' credentials, keys, segments, syncs and runs. "
    "Authenticate with `Authorization: Bearer <management key>` or `Api-Key <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Served from the installed sidecar package: the console never needs a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}


# --- Celery: reliability first (docs/invariants.md 2 and 5; the why is in config/celery.py) ---------
def _broker_url(redis_url: str) -> str:
    """kombu spells a unix socket redis+socket:///path; redis-py spells it unix:///path."""
    return "redis+socket://" + redis_url[len("unix://") :] if redis_url.startswith("unix://") else redis_url


CELERY_BROKER_URL = _broker_url(REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 55 * 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 60 * 60)
# Must exceed the hard time limit, or Redis redelivers a task that is still running.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 2 * 60 * 60)
if CELERY_VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("CELERY_VISIBILITY_TIMEOUT must be greater than CELERY_TASK_TIME_LIMIT.")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_MAX_DELIVERIES = env_int("CELERY_MAX_DELIVERIES", 5)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
# Each worker writes a heartbeat into Redis this often; /healthz counts workers heard within 3x.
HEALTH_HEARTBEAT_SECONDS = env_int("HEALTH_HEARTBEAT_SECONDS", 10)
# Runs (imports, syncs, Kochava stream passes) carry a heartbeat their worker touches every
# RUN_HEARTBEAT_SECONDS; a run whose heartbeat is older than RUN_LOST_SECONDS is lost (its worker was
# killed, ran out of memory or lost its host). Beat looks for them every RUN_LOST_CHECK_SECONDS.
RUN_HEARTBEAT_SECONDS = env_int("RUN_HEARTBEAT_SECONDS", 5)
RUN_LOST_SECONDS = env_int("RUN_LOST_SECONDS", 30)
RUN_LOST_CHECK_SECONDS = env_int("RUN_LOST_CHECK_SECONDS", 10)
if RUN_LOST_SECONDS < 2 * RUN_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("RUN_LOST_SECONDS must be at least twice RUN_HEARTBEAT_SECONDS.")
CELERY_BEAT_SCHEDULE_FILENAME = env_str("CELERY_BEAT_SCHEDULE_FILENAME", default=str(BASE_DIR / ".data" / "beat"))

# --- Logging: JSON unless DEBUG, request id on every line, secrets scrubbed -------------------------
LOG_LEVEL = env_str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "config.logging.RequestIdFilter"},
        "scrub": {"()": "config.logging.SecretScrubFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "text" if DEBUG else "json",
            "filters": ["request_id", "scrub"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}

# --- Product limits (all settings, never constants: partners' documented limits drift) --------------
BLOCKED_IDENTITY_VALUES = env_list(
    "BLOCKED_IDENTITY_VALUES",
    default=[
        "",
        "null",
        "none",
        "nil",
        "undefined",
        "anonymous",
        "unknown",
        "0",
        "-1",
        "00000000-0000-0000-0000-000000000000",
        "[object object]",
        "nan",
        "n/a",
    ],
)
# Identity kinds that are Amplitude's device id under another name: stored as device_id, so they
# merge with identify's anonymousId (install_token is the device id, per docs/partner-apis.md).
DEVICE_ID_KINDS = frozenset(env_list("DEVICE_ID_KINDS", default=["install_token"]))

# --- Sources: pulls from Amplitude (docs/sources.md). Limits drift between Amplitude's doc versions. --
SOURCES_COHORT_DOWNLOADS_PER_MONTH = env_int("SOURCES_COHORT_DOWNLOADS_PER_MONTH", 500)
SOURCES_CONCURRENT_REQUESTS = env_int("SOURCES_CONCURRENT_REQUESTS", 5)  # per project, shared by all workers
SOURCES_HTTP_TIMEOUT = env_int("SOURCES_HTTP_TIMEOUT", 120)  # seconds per read
SOURCES_HTTP_RETRIES = env_int("SOURCES_HTTP_RETRIES", 4)  # 429 / 5xx / connection errors inside a run
SOURCES_RETRY_BACKOFF = float(env_str("SOURCES_RETRY_BACKOFF", default="1.0"))  # seconds, doubled per try
SOURCES_POLL_INTERVAL = float(env_str("SOURCES_POLL_INTERVAL", default="2.0"))  # first poll wait, seconds
SOURCES_POLL_MAX_INTERVAL = float(env_str("SOURCES_POLL_MAX_INTERVAL", default="30.0"))
SOURCES_POLL_TIMEOUT = env_int("SOURCES_POLL_TIMEOUT", 30 * 60)  # give up on a cohort job after this
SOURCES_COHORT_LOOKAHEAD = env_int("SOURCES_COHORT_LOOKAHEAD", 2)  # cohorts asked for ahead of the one loading
SOURCES_EXPORT_WINDOW_HOURS = env_int("SOURCES_EXPORT_WINDOW_HOURS", 24)  # hours per Export API request
SOURCES_EXPORT_LAG_HOURS = env_int("SOURCES_EXPORT_LAG_HOURS", 2)  # Amplitude exports data ~2 h after receipt
SOURCES_BACKFILL_DAYS = env_int("SOURCES_BACKFILL_DAYS", 90)
SOURCES_TEMP_DIR = env_str("SOURCES_TEMP_DIR", default="") or None  # downloads are streamed to temp files here

# --- Inbound pushes (Amplitude cohort sync, cohort webhooks, Segment/RudderStack; docs/inbound.md) ---
# Amplitude sends up to 10,000 ids per request; the cap is a setting because its docs drift.
INBOUND_MAX_IDS_PER_REQUEST = env_int("INBOUND_MAX_IDS_PER_REQUEST", 10_000)
# Body as sent (gzip counted compressed) and once decompressed: the second cap stops gzip bombs.
INBOUND_MAX_BODY_BYTES = env_int("INBOUND_MAX_BODY_BYTES", 5 * 1024 * 1024)
INBOUND_MAX_DECOMPRESSED_BYTES = env_int("INBOUND_MAX_DECOMPRESSED_BYTES", 20 * 1024 * 1024)
# Accepted-but-unapplied batches per workspace above which pushes get 429 + Retry-After.
INBOUND_BACKLOG_LIMIT = env_int("INBOUND_BACKLOG_LIMIT", 2_000)
INBOUND_RETRY_AFTER_SECONDS = env_int("INBOUND_RETRY_AFTER_SECONDS", 30)
# Raw requests kept per API key for the admin's inbound log.
INBOUND_LOG_SIZE = env_int("INBOUND_LOG_SIZE", 100)
# Header names, beyond the built-in list and pattern (config/logging.py), never kept in that log.
INBOUND_LOG_REDACT_HEADERS = env_list("INBOUND_LOG_REDACT_HEADERS", default=[])
# A batch whose apply keeps raising is marked failed after this many attempts, so later ones proceed.
INBOUND_MAX_APPLY_ATTEMPTS = env_int("INBOUND_MAX_APPLY_ATTEMPTS", 5)
# The scheduler re-queues batches still pending this long after receipt (broker was down, worker died).
INBOUND_REQUEUE_AFTER_SECONDS = env_int("INBOUND_REQUEUE_AFTER_SECONDS", 60)

# --- Delivery (outbound syncs; docs/destinations.md) -------------------------------------------------
DELIVERY_CONNECT_TIMEOUT = env_int("DELIVERY_CONNECT_TIMEOUT", 5)
DELIVERY_READ_TIMEOUT = env_int("DELIVERY_READ_TIMEOUT", 30)
DELIVERY_MAX_ATTEMPTS = env_int("DELIVERY_MAX_ATTEMPTS", 6)  # per batch, transient failures only
DELIVERY_BACKOFF_BASE_MS = env_int("DELIVERY_BACKOFF_BASE_MS", 500)
DELIVERY_BACKOFF_CAP_MS = env_int("DELIVERY_BACKOFF_CAP_MS", 30_000)
# Retry-After up to this many seconds is waited in process; longer → run "waiting" with next_attempt_at.
DELIVERY_SHORT_WAIT_SECONDS = env_int("DELIVERY_SHORT_WAIT_SECONDS", 10)
DELIVERY_MAX_RATE_LIMIT_WAITS = env_int("DELIVERY_MAX_RATE_LIMIT_WAITS", 30)
DELIVERY_STALE_RUN_SECONDS = env_int("DELIVERY_STALE_RUN_SECONDS", 300)  # a queued run never picked up is queued again
DELIVERY_CALL_LOG_SIZE = env_int("DELIVERY_CALL_LOG_SIZE", 200)  # partner calls kept per destination
DELIVERY_SEMAPHORE_LEASE_SECONDS = env_int("DELIVERY_SEMAPHORE_LEASE_SECONDS", 120)
DELIVERY_INTEGRATION_NAME = env_str("DELIVERY_INTEGRATION_NAME", default="Amplitude Cohort Sync")
DELIVERY_INTEGRATION_VERSION = env_str("DELIVERY_INTEGRATION_VERSION", default="1.0.0")

# --- Campaigns (CleverTap campaigns; docs/campaigns.md) -----------------------------------------------
# Targeted sends per second per CleverTap account (the pacing limit every worker shares through Redis)
# and people per send (CleverTap takes at most 1,000 ids per call).
CAMPAIGN_SENDS_PER_SECOND = float(env_str("CAMPAIGN_SENDS_PER_SECOND", default="3"))
CAMPAIGN_SEND_BATCH_SIZE = env_int("CAMPAIGN_SEND_BATCH_SIZE", 1000)
# A create or send whose answer was lost is looked up (Get Campaigns) again after this long.
CAMPAIGN_LOOKUP_DELAY_SECONDS = env_int("CAMPAIGN_LOOKUP_DELAY_SECONDS", 60)
# CleverTap's report figures are refreshed by the scheduler tick when older than this.
CAMPAIGN_REPORT_REFRESH_SECONDS = env_int("CAMPAIGN_REPORT_REFRESH_SECONDS", 600)

# --- Outgoing calls (every partner and Amplitude call; integrations/outbound.py, docs/operations.md) ---
# Only public addresses are called, over https. The allow-list (networks, addresses, host:port) is the
# one way to reach a private, loopback or otherwise internal address; plain http is a test-rig switch.
OUTBOUND_ALLOWED_NETWORKS = env_list("OUTBOUND_ALLOWED_NETWORKS", default=[])
try:
    parse_allow_list(OUTBOUND_ALLOWED_NETWORKS)
except ValueError as exc:
    raise ImproperlyConfigured(f"OUTBOUND_ALLOWED_NETWORKS: {exc}") from None
OUTBOUND_ALLOW_HTTP = env_bool("OUTBOUND_ALLOW_HTTP", False)

# --- Partners (docs/partners.md) ------------------------------------------
# Kochava Send Users: a link held back (no install at Kochava yet) is retried after base·2^n s, capped.
KOCHAVA_LINK_RETRY_BASE_SECONDS = env_int("KOCHAVA_LINK_RETRY_BASE_SECONDS", 60)
KOCHAVA_LINK_RETRY_CAP_SECONDS = env_int("KOCHAVA_LINK_RETRY_CAP_SECONDS", 6 * 3600)
# Kochava event streams run at most this often per destination (the scheduler tick is 60 s).
KOCHAVA_STREAM_INTERVAL_SECONDS = env_int("KOCHAVA_STREAM_INTERVAL_SECONDS", 60)

# --- Metrics: GET /metrics for Prometheus (docs/metrics.md) -----------------------------------------
# Who may scrape: a bearer token, client networks (CIDRs, matched against the TCP peer address, never
# X-Forwarded-For), or both (then both must match). With neither, production refuses every scrape.
METRICS_TOKEN = env_str("METRICS_TOKEN", default="")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 32`).")
METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS")
# Runs, rows and partner calls are counted over this trailing window (seconds).
METRICS_WINDOW_SECONDS = env_int("METRICS_WINDOW_SECONDS", 3600)
# --- Erasure of a person (docs/privacy.md) ---------------------------------------------------------
# How long an erasure waits for writers of the workspace's people (an import, a sync being planned)
# before it gives up, changing nothing, and asks to be tried again.
ERASURE_LOCK_TIMEOUT_SECONDS = env_int("ERASURE_LOCK_TIMEOUT_SECONDS", 30)

# --- Partitions and retention (docs/operations.md, "Partitions" and "Retention") -------------------
# Monthly partitions of the ledger and the events created this far ahead (daily task and
# `manage.py partitions`); a partition change gives up after this long waiting for a lock.
PARTITION_MONTHS_AHEAD = env_int("PARTITION_MONTHS_AHEAD", 3)
PARTITION_LOCK_TIMEOUT_SECONDS = env_int("PARTITION_LOCK_TIMEOUT_SECONDS", 5)
# Default retention windows in days; a workspace may override any of them (Workspace.retention).
RETENTION_DEFAULT_DAYS = {
    "inbound_bodies": env_int("RETENTION_INBOUND_BODIES_DAYS", 7),
    "events": env_int("RETENTION_EVENTS_DAYS", 730),
    "delivery_rows": env_int("RETENTION_DELIVERY_ROWS_DAYS", 30),
    "run_detail": env_int("RETENTION_RUN_DETAIL_DAYS", 180),
    "partner_calls": env_int("RETENTION_PARTNER_CALLS_DAYS", 30),
}
# Rows deleted per statement (each its own short transaction) and when the daily pruning runs (UTC).
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 5_000)
RETENTION_HOUR_UTC = env_int("RETENTION_HOUR_UTC", 3)
