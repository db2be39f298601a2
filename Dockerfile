# The ai_agents application image: the `ai-agents` CLI, used by docker-compose.yml as the
# API server (`ai-agents serve`), the workers (`ai-agents worker`) and the one-shot
# `ai-agents migrate`.
#
#   docker build -t ai-agents .
#   docker build --build-arg EXTRAS=openai,anthropic,api,rag -t ai-agents:rag .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Containers get their PostgreSQL/Redis from the environment, never embedded servers.
    AI_AGENTS_EMBEDDED=0

WORKDIR /app

# The package (hatchling builds it from pyproject.toml; migrations ship inside it).
COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY ai_agents ./ai_agents

# Extras: openai, anthropic, api (server), rag (OpenSearch + embeddings, large), local.
ARG EXTRAS=openai,anthropic,api
RUN pip install ".[${EXTRAS}]" \
    && useradd --create-home --uid 10001 app

USER app
EXPOSE 8000

ENTRYPOINT ["ai-agents"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
