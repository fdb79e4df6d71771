FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/gridwork

COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --no-cache-dir -e . \
    && useradd --system --home /srv/gridwork gridwork
USER gridwork

EXPOSE 8000
CMD ["sh", "-c", "gridwork migrate && gridwork serve --host 0.0.0.0 --port 8000"]
