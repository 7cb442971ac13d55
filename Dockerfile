# One image for every yujing process: the scoring worker (`yujing worker`, the default command),
# the case service (`yujing cases serve`), its schema migrations (`yujing cases migrate`) and the
# topic set-up. deploy/compose.yaml and deploy/k8s/ choose the command per service.
#
#   docker build -t yujing:local .
#   docker run --rm yujing:local yujing --help
#
# Build stage: the project and its dependencies (wheels from PyPI) into a virtualenv.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/yujing
WORKDIR /src
# README.md is the package's long description (pyproject.toml `readme`), so the build needs it.
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY models ./models
COPY alerts ./alerts
COPY engine ./engine
COPY streams ./streams
COPY cases ./cases
COPY yujing ./yujing
RUN /opt/yujing/bin/pip install --upgrade pip \
 && /opt/yujing/bin/pip install .

# Runtime stage: the virtualenv only, run by an unprivileged user with a numeric id (so that
# Kubernetes' runAsNonRoot can verify it).
FROM python:3.11-slim
RUN groupadd --system --gid 10001 yujing \
 && useradd --system --uid 10001 --gid yujing --home-dir /var/lib/yujing --create-home \
      --shell /usr/sbin/nologin yujing
COPY --from=build /opt/yujing /opt/yujing
ENV PATH=/opt/yujing/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    YUJING_HOME=/var/lib/yujing \
    YUJING_METRICS_HOST=0.0.0.0 \
    YUJING_CASES_HOST=0.0.0.0
USER 10001:10001
WORKDIR /var/lib/yujing
# 9464: the worker's /metrics; 8470: the case service's API, web inbox, /healthz and /metrics.
EXPOSE 9464 8470
# The worker keeps no state on disk (Faust tables are in memory and rebuilt from their changelog
# topics on start); YUJING_HOME holds only Faust's small data directory.
CMD ["yujing", "worker"]
