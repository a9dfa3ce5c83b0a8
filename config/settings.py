"""Canary's settings, read from the environment (12-factor).

The defaults run the embedded mode: SQLite, tasks in-process, e-mail kept in the dashboard's outbox.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
import plotly
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    env_bool,
    env_datetime,
    env_int,
    env_list,
    env_str,
    replica_database,
    secret_key_kept,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # embedded mode's database and files

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
CANARY_BASE_URL = env_str("CANARY_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
CANARY_MAX_UPLOAD_MB = env_int("CANARY_MAX_UPLOAD_MB", 100)
CANARY_MAX_RECORDS = env_int("CANARY_MAX_RECORDS", 100_000)
# Requests per API key on the ingestion endpoints ("N/s", "N/min", "N/hour"; empty: no limit).
CANARY_INGEST_RATE = env_str("CANARY_INGEST_RATE", "600/min")
# Event times outside [floor, now + skew] are refused at ingestion: a date in year 9999 or 0001
# would overflow the hour arithmetic of every job that reads it.
CANARY_TIMESTAMP_FLOOR = env_datetime("CANARY_TIMESTAMP_FLOOR", "2000-01-01")
CANARY_FUTURE_SKEW_S = env_int("CANARY_FUTURE_SKEW_S", 86400)
# Runs of a model's jobs in a row that end with a failure open before its on-call list gets
# one "monitoring is failing" e-mail (and a resolved one when the jobs succeed again).
CANARY_JOB_FAILURES_ALERT = env_int("CANARY_JOB_FAILURES_ALERT", 3)
# Raw predictions, outcomes and labels are kept this long, then removed a month at a time;
# aggregates are kept forever, and hours older than the raw horizon are sealed.
CANARY_RAW_RETENTION_DAYS = env_int("CANARY_RAW_RETENTION_DAYS", 400)
CANARY_QUARANTINE_RETENTION_DAYS = env_int("CANARY_QUARANTINE_RETENTION_DAYS", 400)
CANARY_EVALUATION_RETENTION_DAYS = env_int("CANARY_EVALUATION_RETENTION_DAYS", 30)
for _horizon in ("RAW", "QUARANTINE", "EVALUATION"):
    if globals()[f"CANARY_{_horizon}_RETENTION_DAYS"] < 1:
        raise ImproperlyConfigured(f"CANARY_{_horizon}_RETENTION_DAYS must be at least 1 day")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "csp",
    "drf_spectacular_sidecar",
    "accounts",
    "factory",
    "monitoring",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.QueryTextMiddleware",
    "config.middleware.StatementTimeoutMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context.outbox",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'canary.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # Concurrent readers beside one writer, and a writer that waits instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Reads off a PostgreSQL streaming replica of DATABASE_URL (docs/operations.md): pages and GET
# answers read there; writes, jobs and a user's reads until their last write is replayed (at
# most CANARY_REPLICA_WAIT_S) use the primary. Pages say when it lags past the warning.
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL", "")
CANARY_REPLICA_WAIT_S = env_int("CANARY_REPLICA_WAIT_S", 300)
CANARY_REPLICA_LAG_WARN_S = env_int("CANARY_REPLICA_LAG_WARN_S", 60)
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = replica_database(DATABASE_REPLICA_URL, DATABASES["default"])
    DATABASE_ROUTERS = ["config.replica.ReplicaRouter"]
    MIDDLEWARE.insert(
        MIDDLEWARE.index("config.middleware.StatementTimeoutMiddleware"),
        "config.replica.ReplicaReadsMiddleware",
    )
    SESSION_ENGINE = "config.sessions"
    TEMPLATES[0]["OPTIONS"]["context_processors"].append("config.replica.replica_lag_context")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"

# Security (docs/operations.md): the secret key, HTTPS, proxies, login lockout, query limits.
# With DEBUG off and a production database, a missing SECRET_KEY stops the start; the embedded
# mode makes its own once and keeps it in var/.
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY and not DEBUG and DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    raise ImproperlyConfigured(
        "SECRET_KEY must be set when DEBUG is off and DATABASE_URL names a production database."
    )
SECRET_KEY = SECRET_KEY or secret_key_kept(VAR_DIR / "secret_key")
# Secure cookies, the redirect to https and HSTS; off for plain HTTP on a trusted network.
CANARY_HTTPS = env_bool("CANARY_HTTPS", not DEBUG)
# Behind a reverse proxy that terminates TLS: trust its X-Forwarded-Proto (and -For, for logins).
CANARY_BEHIND_PROXY = env_bool("CANARY_BEHIND_PROXY", False)
SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = CANARY_HTTPS
# HSTS covers Canary's own host name and the names below it; serve it on a host of its own.
SECURE_HSTS_SECONDS = env_int("CANARY_HSTS_SECONDS", 31_536_000) if CANARY_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = True
if CANARY_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content-Security-Policy: the pages load scripts, styles and plotly.js from this server only,
# and carry their data in <script type="application/json"> blocks, never inline code. The API
# docs (Redoc, from this server's static files) add what Redoc needs: see config/urls.py.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # plotly.js adds its rules to <style> elements it creates empty (the empty content's
        # hash) and writes maplibre's stylesheet into one on load (that text's hash, for the
        # pinned plotly; tests/dashboard/test_csp_browser.py notices when it changes).
        "style-src": [
            "'self'",
            "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
            "'sha256-ji27qzEtxXZW+7dun6UwjHXJ18e6WAin1VvNtkzIE/o='",
        ],
        # plotly.js also sets style attributes on the SVG it draws (no script can run from one).
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
CANARY_LOGIN_FAILURES = env_int("CANARY_LOGIN_FAILURES", 5)
CANARY_LOGIN_LOCKOUT_MINUTES = env_int("CANARY_LOGIN_LOCKOUT_MINUTES", 15)
# The most windows one series may span (metrics, sensitivity, the pages' charts): a 400 past it.
CANARY_MAX_POINTS = env_int("CANARY_MAX_POINTS", 5000)
# Outbound URLs users set (webhooks, retrain hooks) may reach private addresses and plain http:
# only for a lab or a trusted network; off, they must be https to public addresses.
CANARY_OUTBOUND_ALLOW_PRIVATE = env_bool("CANARY_OUTBOUND_ALLOW_PRIVATE", False)
# PostgreSQL statements of web requests stop after this long (0: never); jobs have no limit.
CANARY_STATEMENT_TIMEOUT_S = env_int("CANARY_STATEMENT_TIMEOUT_S", 30)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"  # collectstatic's target in production
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns when it is missing
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # plotly.js comes from the pinned plotly package, served by us, never from a CDN.
    ("vendor/plotly", Path(plotly.__file__).parent / "package_data"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Bodies up to the upload limit are read by the ingestion views themselves.
DATA_UPLOAD_MAX_MEMORY_SIZE = CANARY_MAX_UPLOAD_MB * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["common.json_parser.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "config.problems.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Canary API",
    "DESCRIPTION": "Prediction logs, outcomes, metrics, drift and alerts for models in production.",
    "VERSION": "1.0.0",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "REDOC_DIST": "SIDECAR",  # Redoc from the app's static files: the docs work offline
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.schema.problem_responses",
    ],
}

# The cache holds throttling counters; they must be shared by every web process in production.
REDIS_URL = env_str("REDIS_URL", "")
_CACHE_REDIS = REDIS_URL or env_str("CELERY_BROKER_URL", "")
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _CACHE_REDIS,
            "KEY_PREFIX": "canary",
        }
        if _CACHE_REDIS.startswith(("redis://", "rediss://"))
        # Room for the drift cells of a few pages (each well under a kilobyte).
        else {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 20_000},
        }
    )
}

# Celery: without a broker URL the embedded mode runs tasks in-process.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL == ""
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 1800)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
# Longer than the longest task, so a late-acked task is not handed to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT * 2}
CELERY_TASK_IGNORE_RESULT = True
# A task running when the broker connection drops is redelivered anyway (acks late); stop it
# rather than let two copies run.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # keep trying: a worker waits out a broker restart
CELERY_TIMEZONE = "UTC"
CANARY_JOBS_INTERVAL_S = env_int("CANARY_JOBS_INTERVAL_S", 60)
CANARY_SWEEP_INTERVAL_S = env_int("CANARY_SWEEP_INTERVAL_S", 3600)
CANARY_RETENTION_INTERVAL_S = env_int("CANARY_RETENTION_INTERVAL_S", 86400)
# A Celery task name that receives every retrain request's payload (empty: none).
CANARY_RETRAIN_TASK = env_str("CANARY_RETRAIN_TASK", "")

EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Canary <canary@localhost>")
# Without an SMTP server (the embedded mode), e-mails are kept in the dashboard's outbox.
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "monitoring.alerts.transports.outbox.OutboxBackend"
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
