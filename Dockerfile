# One image for the three services: `motcua intake | tracker | notifier | db upgrade`.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY services ./services
RUN pip install . && useradd --system --home /app motcua && mkdir -p /app/var && chown motcua /app/var
USER motcua
EXPOSE 8000
ENTRYPOINT ["motcua"]
CMD ["--help"]
