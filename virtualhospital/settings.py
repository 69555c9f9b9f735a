"""Settings of the virtual hospital, read once from the environment (see README.md).

Every variable has a zero-configuration default for development; a bad value stops start-up
with a message naming the variable.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url

from apps.core.env import (
    ConfigError,
    env_bool,
    env_int,
    env_list,
    env_opening_hours,
    env_secret,
    env_str,
    env_times,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)
TESTING = "pytest" in sys.modules or env_bool("VH_TESTING", False)


def _dev_secret(name: str, make: str) -> str:
    """A development value kept under var/ so sessions survive restarts; never in production."""
    if not DEBUG:
        raise ConfigError(name, "required when DEBUG=0")
    path = VAR_DIR / f"dev-{name.lower()}"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        if make == "fernet":
            from cryptography.fernet import Fernet

            value = Fernet.generate_key().decode()
        else:
            from django.utils.crypto import get_random_string

            value = get_random_string(64)
        path.write_text(value, encoding="utf-8")
        if not TESTING:
            warnings.warn(f"{name} is unset: using a generated development value", stacklevel=1)
    return path.read_text(encoding="utf-8").strip()


SECRET_KEY = env_secret("SECRET_KEY") or _dev_secret("SECRET_KEY", "string")
_encryption_keys = env_secret("FIELD_ENCRYPTION_KEYS")
FIELD_ENCRYPTION_KEYS = (
    [key.strip() for key in _encryption_keys.split(",") if key.strip()]
    if _encryption_keys
    else [_dev_secret("FIELD_ENCRYPTION_KEYS", "fernet")]
)


def _check_fernet_keys(keys: list[str]) -> None:
    from cryptography.fernet import Fernet

    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ConfigError(
                "FIELD_ENCRYPTION_KEYS", f"key #{position} is not a 32-byte url-safe base64 key"
            ) from None


_check_fernet_keys(FIELD_ENCRYPTION_KEYS)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ConfigError("ALLOWED_HOSTS", "required when DEBUG=0 (comma-separated host names)")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

TIME_ZONE = env_str("TIME_ZONE", "Europe/Zurich")
try:
    ZoneInfo(TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError):
    raise ConfigError("TIME_ZONE", f"unknown time zone {TIME_ZONE!r}") from None
USE_TZ = True
USE_I18N = True
LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]

INSTALLED_APPS = [
    "daphne",
    "apps.accounts.admin_config.HospitalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "channels",
    "apps.core",
    "apps.accounts",
    "apps.audit",
    "apps.notifications",
    "guardian",
    "oauth2_provider",
    "apps.records",
    "apps.scheduling",
    "apps.devices",
    "apps.teleconsult",
    "apps.messaging",
    "apps.billing",
    "apps.care",
    "apps.interop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "apps.core.middleware.ChosenLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "apps.accounts.middleware.SessionPolicyMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "virtualhospital.urls"
WSGI_APPLICATION = "virtualhospital.wsgi.application"
ASGI_APPLICATION = "virtualhospital.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.core.context_processors.portal",
            ],
        },
    },
]

# Database: SQLite under var/ unless DATABASE_URL names a PostgreSQL server.
DATABASE_URL = env_url("DATABASE_URL", ("postgres", "postgresql", "sqlite"))
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
        )
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "virtualhospital.sqlite3"),
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: cache, channel layer and Celery broker; in-process equivalents when unset.
REDIS_URL = env_url("REDIS_URL", ("redis", "rediss"))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "vh"),
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 times out reads after 5 s by default, exactly channels-redis's
                # blocking-pop time: give the socket more than that.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 30,
                        # redis-py 8 caps a pool at 100 connections and then raises instead of
                        # waiting; a busy web process holds one per command in flight.
                        "max_connections": env_int("REDIS_MAX_CONNECTIONS", 1000, minimum=10),
                    }
                ],
                "prefix": env_str("CHANNEL_PREFIX", "vh"),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
# Eager (no Redis) mode must not turn a failed email into a failed request.
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The beat's own state file (last run times) lives with the other runtime files.
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "audit-checkpoint": {"task": "apps.audit.tasks.checkpoint_audit", "schedule": 3600.0},
    "fhir-export-purge": {"task": "apps.interop.tasks.purge_expired_exports", "schedule": 3600.0},
    "devices-escalate": {"task": "apps.devices.tasks.escalate_alerts", "schedule": 30.0},
    "teleconsult-purge-recordings": {
        "task": "apps.teleconsult.tasks.purge_recordings",
        "schedule": 3600.0,
    },
    "billing-capture": {"task": "apps.billing.tasks.capture_charges", "schedule": 60.0},
    "billing-claims": {"task": "apps.billing.tasks.retry_claims", "schedule": 300.0},
    "scheduling-reminders": {"task": "apps.scheduling.tasks.send_reminders", "schedule": 300.0},
    # Care coordination: dose reminders every minute (doses fall on the minute), the rest
    # every few minutes; all idempotent.
    "care-dose-reminders": {"task": "apps.care.tasks.send_dose_reminders", "schedule": 60.0},
    "care-questionnaires": {"task": "apps.care.tasks.send_questionnaires", "schedule": 300.0},
    "care-overdue-tasks": {"task": "apps.care.tasks.flag_overdue_tasks", "schedule": 300.0},
    "care-decision-support": {"task": "apps.care.tasks.evaluate_rules", "schedule": 900.0},
    "scheduling-offers": {
        "task": "apps.scheduling.tasks.expire_waiting_list_offers",
        "schedule": 300.0,
    },
    # Daily work, checked hourly: a restarted beat never skips a day (the task is idempotent).
    "scheduling-follow-ups": {
        "task": "apps.scheduling.tasks.mark_follow_ups_overdue",
        "schedule": 3600.0,
    },
}

MQTT_URL = env_url("MQTT_URL", ("mqtt", "mqtts"))

# Accounts and authentication.
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# Guardian's anonymous user needs a username field, which our email-only User lacks.
ANONYMOUS_USER_NAME = None

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_ADAPTER = "apps.accounts.adapter.AccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_PREVENT_ENUMERATION = True
LOGIN_ATTEMPTS_LIMIT = env_int("LOGIN_ATTEMPTS_LIMIT", 5, minimum=1)
LOGIN_ATTEMPTS_TIMEOUT = env_int("LOGIN_ATTEMPTS_TIMEOUT", 300, minimum=1)
# Failed logins: per client address, and per account whatever the address.
ACCOUNT_RATE_LIMITS = {
    "login_failed": f"{LOGIN_ATTEMPTS_LIMIT * 2}/m/ip,"
    f"{LOGIN_ATTEMPTS_LIMIT}/{LOGIN_ATTEMPTS_TIMEOUT}s/key",
}
ACCOUNT_EMAIL_SUBJECT_PREFIX = ""
# Client IPs come from X-Forwarded-For only through this many trusted reverse proxies.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT

OTP_TOTP_ISSUER = env_str("OTP_ISSUER", "Hôpital virtuel")
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
OTP_ATTEMPTS_LIMIT = env_int("OTP_ATTEMPTS_LIMIT", 5, minimum=1)
OTP_ATTEMPTS_WINDOW = env_int("OTP_ATTEMPTS_WINDOW", 300, minimum=1)
STAFF_IDLE_TIMEOUT = env_int("STAFF_IDLE_TIMEOUT", 15 * 60, minimum=60)
INVITATION_TTL_HOURS = env_int("INVITATION_TTL_HOURS", 72, minimum=1)

SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=300)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Email and SMS.
EMAIL_URL = env_str("EMAIL_URL", "console://" if DEBUG else "")


def _email_settings(url: str) -> dict[str, object]:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    backends = {
        "console": "django.core.mail.backends.console.EmailBackend",
        "locmem": "django.core.mail.backends.locmem.EmailBackend",
        "file": "django.core.mail.backends.filebased.EmailBackend",
        "smtp": "django.core.mail.backends.smtp.EmailBackend",
        "smtp+tls": "django.core.mail.backends.smtp.EmailBackend",
        "smtps": "django.core.mail.backends.smtp.EmailBackend",
    }
    if parts.scheme not in backends:
        raise ConfigError("EMAIL_URL", f"scheme must be one of {', '.join(backends)}")
    result: dict[str, object] = {"EMAIL_BACKEND": backends[parts.scheme]}
    if parts.scheme == "file":
        result["EMAIL_FILE_PATH"] = parts.path or str(VAR_DIR / "mail")
    if parts.scheme.startswith("smtp"):
        try:
            port = parts.port
        except ValueError:
            raise ConfigError("EMAIL_URL", "bad port") from None
        result.update(
            EMAIL_HOST=parts.hostname or "localhost",
            EMAIL_PORT=port or (465 if parts.scheme == "smtps" else 587),
            EMAIL_HOST_USER=unquote(parts.username or ""),
            EMAIL_HOST_PASSWORD=unquote(parts.password or ""),
            EMAIL_USE_TLS=parts.scheme == "smtp+tls",
            EMAIL_USE_SSL=parts.scheme == "smtps",
        )
    return result


if not EMAIL_URL:
    raise ConfigError("EMAIL_URL", "required when DEBUG=0 (e.g. smtp+tls://user:pass@host:587)")
globals().update(_email_settings(EMAIL_URL))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Hôpital virtuel <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
SMS_BACKEND = env_str("SMS_BACKEND", "apps.notifications.sms.ConsoleSmsBackend")
SMS_HTTP_URL = env_str("SMS_HTTP_URL", "")
# Video consultations: STUN/TURN servers given to browsers. TURN credentials are short-lived,
# derived from TURN_SECRET with coturn's REST-API scheme (`use-auth-secret` in turnserver.conf).
STUN_URLS = env_list("STUN_URLS", [])
TURN_URLS = env_list("TURN_URLS", [])
TURN_SECRET = env_secret("TURN_SECRET")
if not all(u.split(":", 1)[0] in ("turn", "turns") for u in TURN_URLS):
    raise ConfigError("TURN_URLS", f"turn: or turns: URLs expected, not {TURN_URLS}")
if TURN_URLS and not TURN_SECRET:
    raise ConfigError("TURN_SECRET", "required when TURN_URLS is set (coturn static-auth-secret)")
if not all(u.split(":", 1)[0] in ("stun", "stuns") for u in STUN_URLS):
    raise ConfigError("STUN_URLS", f"stun: or stuns: URLs expected, not {STUN_URLS}")
TURN_CREDENTIAL_SECONDS = env_int("TURN_CREDENTIAL_SECONDS", 4 * 3600, minimum=60)

# Static files: front-end libraries arrive in static/vendor/ from package.json at set-up.
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# In development WhiteNoise serves straight from the finders, no collectstatic needed.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# APIs.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.accounts.permissions.IsVerifiedUser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Virtual hospital API",
    "DESCRIPTION": "REST API of the virtual hospital. Authenticate with `Authorization: Bearer`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Care coordination serialises several choice sets under the same field names.
    "ENUM_NAME_OVERRIDES": {
        "CarePlanStatusEnum": "apps.care.models.CarePlan.Status",
        "TaskStatusEnum": "apps.care.models.Task.Status",
        "TaskKindEnum": "apps.care.models.common.TaskKind",
        "ActivityKindEnum": "apps.care.models.common.ActivityKind",
    },
}

# Security. Production (DEBUG=0) runs behind a TLS-terminating proxy.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if len(SECRET_KEY) < 50:
        raise ConfigError("SECRET_KEY", "must be at least 50 characters when DEBUG=0")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # WeasyPrint and fontTools narrate every PDF at INFO.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}

# Patient record.
# Sensitive categories of the record: the clinical roles that may see each one.
_SENSITIVE_DEFAULT = ["physician"]
RECORDS_SENSITIVE_ROLES = {
    category: env_list(f"SENSITIVE_{category.upper()}_ROLES", _SENSITIVE_DEFAULT)
    for category in ("mental_health", "sexual_health", "addiction")
}
RECORDS_BREAK_GLASS_HOURS = env_int("BREAK_GLASS_HOURS", 4, minimum=1)
RECORDS_MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_MB", 20, minimum=1) * 1024 * 1024
# Every upload is scanned before it is checked and stored (apps/core/scanning.py); a scanner
# that cannot answer refuses the file. For ClamAV add "apps.core.scanning.ClamdScanner" and set
# CLAMD_URL=tcp://host:3310.
UPLOAD_SCANNERS = env_list("UPLOAD_SCANNERS", ["apps.core.scanning.EicarScanner"])
CLAMD_URL = env_url("CLAMD_URL", ("tcp",))
if any(path.endswith(".ClamdScanner") for path in UPLOAD_SCANNERS) and not CLAMD_URL:
    raise ConfigError("CLAMD_URL", "required when UPLOAD_SCANNERS names ClamdScanner")

# Remote monitoring (apps/devices): limits on what a device message may carry.
DEVICES_MAX_PAYLOAD_BYTES = env_int("DEVICES_MAX_PAYLOAD_BYTES", 64 * 1024, minimum=1024)
DEVICES_MAX_READINGS_PER_MESSAGE = env_int("DEVICES_MAX_READINGS_PER_MESSAGE", 1000, minimum=1)
DEVICES_MAX_AGE_DAYS = env_int("DEVICES_MAX_AGE_DAYS", 30, minimum=1)
DEVICES_MAX_FUTURE_MINUTES = env_int("DEVICES_MAX_FUTURE_MINUTES", 5, minimum=0)
# HTTPS ingestion: messages per minute per device and client address.
DEVICES_HTTP_RATE_LIMIT = env_int("DEVICES_HTTP_RATE_LIMIT", 600, minimum=1)
# Scheduling (apps/scheduling): online booking closes this long before a slot; patients may
# cancel or move an appointment until this many hours before it; reminders go this many
# minutes before (comma-separated); a waiting-list offer holds its slot this long.
SCHEDULING_MIN_NOTICE_MINUTES = env_int("SCHEDULING_MIN_NOTICE_MINUTES", 120, minimum=0)
SCHEDULING_PATIENT_CHANGE_HOURS = env_int("SCHEDULING_PATIENT_CHANGE_HOURS", 24, minimum=0)
_reminders = env_list("SCHEDULING_REMINDER_MINUTES", ["1440", "60"])
if not all(m.isdigit() and int(m) > 0 for m in _reminders):
    raise ConfigError("SCHEDULING_REMINDER_MINUTES", f"positive minutes expected, not {_reminders}")
SCHEDULING_REMINDER_MINUTES = sorted({int(m) for m in _reminders}, reverse=True)
SCHEDULING_OFFER_MINUTES = env_int("SCHEDULING_OFFER_MINUTES", 120, minimum=5)
SCHEDULING_SEARCH_DAYS = env_int("SCHEDULING_SEARCH_DAYS", 90, minimum=1)

# Minutes an alert may stay unacknowledged before it escalates to the next person on call
# (a rule may set its own delay); information alerts never escalate.
DEVICES_ESCALATION_MINUTES = {
    "critical": env_int("DEVICES_ESCALATION_MINUTES_CRITICAL", 5, minimum=1),
    "warning": env_int("DEVICES_ESCALATION_MINUTES_WARNING", 15, minimum=1),
}

# Video consultations (apps/teleconsult).
# The patient may enter the waiting room this many minutes before the appointment, and the room
# stays usable this many minutes after its planned end.
TELECONSULT_EARLY_MINUTES = env_int("TELECONSULT_EARLY_MINUTES", 30, minimum=0)
TELECONSULT_LATE_MINUTES = env_int("TELECONSULT_LATE_MINUTES", 60, minimum=0)
# Guest links expire after this many minutes (and always when the consultation ends).
TELECONSULT_GUEST_LINK_MINUTES = env_int("TELECONSULT_GUEST_LINK_MINUTES", 120, minimum=5)
# Recordings are deleted this many days after the call.
TELECONSULT_RECORDING_RETENTION_DAYS = env_int(
    "TELECONSULT_RECORDING_RETENTION_DAYS", 30, minimum=1
)
TELECONSULT_RECORDING_CHUNK_BYTES = env_int(
    "TELECONSULT_RECORDING_CHUNK_BYTES", 8 * 1024 * 1024, minimum=64 * 1024
)
# Signalling messages one connection may send per 10 seconds before being throttled.
TELECONSULT_SIGNAL_RATE = env_int("TELECONSULT_SIGNAL_RATE", 300, minimum=10)

# Secure messaging (apps/messaging).
# When the care team reads messages ("1-5 08:00-18:00": Monday to Friday, in TIME_ZONE). A
# patient writing outside these hours gets an automatic reply saying when to expect an answer.
MESSAGING_OPENING_HOURS = env_opening_hours("MESSAGING_OPENING_HOURS", "1-5 08:00-18:00")
# The team answers within this many opening hours (16: two working days).
MESSAGING_RESPONSE_HOURS = env_int("MESSAGING_RESPONSE_HOURS", 16, minimum=1)
# At most this many files per message (each within MAX_UPLOAD_MB).
MESSAGING_MAX_FILES = env_int("MESSAGING_MAX_FILES", 5, minimum=1)

# Billing (apps/billing). Claims to insurers: attempts before a claim is marked failed, the
# timeout of one HTTP attempt, and where the file connector writes claim files.
BILLING_CLAIM_ATTEMPTS = env_int("BILLING_CLAIM_ATTEMPTS", 5, minimum=1)
BILLING_CLAIM_TIMEOUT = env_int("BILLING_CLAIM_TIMEOUT", 15, minimum=1)
BILLING_CLAIM_DIR = Path(env_str("BILLING_CLAIM_DIR", str(VAR_DIR / "claims")))

# Care coordination (apps/care). Default dose times (local wall times; 1 dose a day is the
# first, 2 the first and third…, the patient may choose others) and quiet hours, in which no
# reminder is sent (it waits for their end). A dose reminder without an answer after
# CARE_DOSE_ANSWER_HOURS counts as missed. Doses are planned CARE_DOSE_HORIZON_HOURS ahead.
CARE_DOSE_TIMES = env_times(
    "CARE_DOSE_TIMES", ["08:00", "12:00", "18:00", "22:00"], count=(4, 4), increasing=True
)
CARE_QUIET_HOURS = env_times("CARE_QUIET_HOURS", ["22:30", "07:00"], count=(2, 2))
CARE_DOSE_ANSWER_HOURS = env_int("CARE_DOSE_ANSWER_HOURS", 12, minimum=1)
CARE_DOSE_HORIZON_HOURS = env_int("CARE_DOSE_HORIZON_HOURS", 36, minimum=1)
# The satisfaction survey sent after a consultation of a patient on no pathway that sets one
# (a Questionnaire code; empty: none).
CARE_SATISFACTION_SURVEY = env_str("CARE_SATISFACTION_SURVEY", "satisfaction-consultation")
# A care plan's next follow-up is asked of scheduling as a follow-up to book, of this
# appointment type (its code; empty or unknown: plans ask for nothing).
CARE_FOLLOW_UP_TYPE = env_str("CARE_FOLLOW_UP_TYPE", "video-follow-up")

# FHIR API (apps/interop). Backend systems get bearer tokens through the OAuth2
# client-credentials grant at /o/token/; the scopes a client may ask for are set per client.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": env_int("FHIR_TOKEN_SECONDS", 3600, minimum=60),
    "SCOPES": {
        "system/*.rs": "Read and search every resource",
        "system/*.cruds": "Read, search and write every resource",
    },
    "SCOPES_BACKEND_CLASS": "apps.interop.fhir_api.oauth.ClientScopesBackend",
    # OAuth 2.0 Security BCP (RFC 9700) everywhere, although only client credentials is used.
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
}
# Bulk Data $export: how long finished files stay downloadable.
FHIR_EXPORT_RETENTION_HOURS = env_int("FHIR_EXPORT_RETENTION_HOURS", 24, minimum=1)
