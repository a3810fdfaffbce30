# tmstream image: the `tmstream` CLI (worker, replay, topics, models …) on Python 3.11.
#   docker build -t tmstream:0.1.0 .                                  # worker/producer image, no TensorFlow
#   docker build -t tmstream-trainer:0.1.0 --build-arg EXTRAS=train . # adds TensorFlow/Keras for `tmstream train`
# The NASA data and the reference models are never baked in: mount them at /data (TMSTREAM_DATA_DIR).
# The builder makes the wheel and installs it (not editable): config defaults, schemas, alert rules and
# the Kafka POM travel inside the package, so the runtime stage needs the venv only.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tmstream ./tmstream
COPY producers ./producers
COPY stream_workers ./stream_workers
COPY model_store ./model_store
COPY dashboards ./dashboards
COPY workorders ./workorders
COPY evaluation ./evaluation
COPY config ./config
COPY schemas ./schemas
COPY deploy/prometheus/rules ./deploy/prometheus/rules
COPY deploy/alertmanager ./deploy/alertmanager
COPY deploy/local/kafka ./deploy/local/kafka
RUN pip install --upgrade pip \
 && pip wheel --no-deps -w /dist . \
 && pip install "$(echo /dist/*.whl)${EXTRAS:+[$EXTRAS]}"

FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
RUN useradd --system --uid ${UID} --user-group --home-dir /var/lib/tmstream --shell /usr/sbin/nologin tmstream \
 && mkdir -p /var/lib/tmstream/mlflow/artifacts /data \
 && chown -R tmstream:tmstream /var/lib/tmstream
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/tmstream \
    NUMBA_CACHE_DIR=/var/lib/tmstream/numba \
    MPLCONFIGDIR=/var/lib/tmstream/matplotlib \
    TMSTREAM_STATE_DIR=/var/lib/tmstream \
    TMSTREAM_DATA_DIR=/data \
    TMSTREAM_WORKER_METRICS_HOST=0.0.0.0 \
    TMSTREAM_WORKER_METRICS_PORT=6066
WORKDIR /var/lib/tmstream
USER tmstream
# The engine's numba kernels compiled into NUMBA_CACHE_DIR at build, not by a worker's first batch
# (numba keys them by CPU: on another kind of CPU the worker compiles them again, ≈40 s).
RUN python -m model_store.warm
EXPOSE 6066
# Meaningful for `tmstream worker`; one-shot commands (topics, replay, import) switch it off in compose.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['TMSTREAM_WORKER_METRICS_PORT'], timeout=4)"]
ENTRYPOINT ["tmstream"]
CMD ["worker"]
