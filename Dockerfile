# Production image: daphne serving HTTP and WebSockets, as a non-root user.
# Build: docker build -t virtualhospital .
# Run:   docker run --env-file prod.env -p 8000:8000 virtualhospital
#        (the same image runs `python manage.py migrate`, `celery -A virtualhospital worker`,
#        `celery -A virtualhospital beat` and, later, `python manage.py ingest_mqtt`)

FROM node:20-bookworm-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY scripts ./scripts
RUN mkdir -p static && node scripts/vendor-static.mjs --production

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DEBUG=0
RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext libpango-1.0-0 libpangoft2-1.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 hospital
WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY . .
COPY --from=assets /build/static/vendor ./static/vendor
# Build-time values only, so settings load for collectstatic; real ones come at run time.
RUN SECRET_KEY="build-only-$(python -c 'import secrets;print(secrets.token_urlsafe(48))')" \
    FIELD_ENCRYPTION_KEYS="$(python -c 'from cryptography.fernet import Fernet;print(Fernet.generate_key().decode())')" \
    ALLOWED_HOSTS=build EMAIL_URL=console:// VAR_DIR=/tmp/var \
    sh -c "python manage.py compilemessages --ignore=.venv && python manage.py collectstatic --noinput" \
    && mkdir -p /app/var && chown -R hospital:hospital /app/var
USER hospital
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys;sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status!=200)"
CMD ["daphne", "--bind", "0.0.0.0", "--port", "8000", "--proxy-headers", "virtualhospital.asgi:application"]
