FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    GRIDWORK_ATTACHMENTS_DIR=/var/lib/gridwork/attachments
WORKDIR /srv/gridwork

COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
# The service and its runtime dependencies only (no test tools); the code stays read-only to
# the service's user, which owns just the photo store (a volume in docker-compose.yml).
RUN pip install --no-cache-dir -e . \
    && useradd --system --no-create-home --home-dir /srv/gridwork gridwork \
    && mkdir -p "$GRIDWORK_ATTACHMENTS_DIR" \
    && chown gridwork:gridwork "$GRIDWORK_ATTACHMENTS_DIR"
USER gridwork
VOLUME ["/var/lib/gridwork/attachments"]

EXPOSE 8000
CMD ["sh", "-c", "gridwork migrate && gridwork serve --host 0.0.0.0 --port 8000"]
