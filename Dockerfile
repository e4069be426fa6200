# Cohort Console: one image, three processes, chosen by the command (config/start.py):
#   docker run IMAGE web | worker [QUEUE,...] | beat | migrate | check web|worker|beat
# compose.yaml runs it on one machine; docs/deployment.md covers several.

# -- build: a virtualenv with the runtime requirements, and the static files collected -------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY requirements.txt ./
# Only the lines above the "Development only" marker: no embedded servers, test or lint tools.
RUN sed '/^# ---- Development only/,$d' requirements.txt > requirements-runtime.txt \
 && python -m venv /venv \
 && /venv/bin/pip install -r requirements-runtime.txt
COPY . .
# collectstatic imports the settings, which insist on every production variable: throw-away values,
# for this one command (a fresh random Fernet key, never the development one).
RUN DEBUG=0 SECRET_KEY=collectstatic-only-not-a-secret-0123456789abcdefghijklmnopqrstuv \
    FIELD_ENCRYPTION_KEYS="$(/venv/bin/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
    ALLOWED_HOSTS=build DATABASE_URL=postgresql://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    /venv/bin/python manage.py collectstatic --noinput \
 && /venv/bin/python -m compileall -q /app

# -- runtime: no compiler, no pip cache, not root -----------------------------------------------------
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 console \
 && useradd --system --uid 10001 --gid console --home-dir /app --no-create-home --shell /usr/sbin/nologin console
COPY --from=build /venv /venv
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8000 \
    CELERY_BEAT_SCHEDULE_FILENAME=/tmp/celerybeat-schedule
# The code and static files stay root-owned and read-only to the process.
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["python", "-m", "config.start"]
CMD ["web"]
