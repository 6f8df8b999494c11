# Spendgate's gateway image: the core install in a virtualenv on a slim Python, run as a non-root user.
#
#   docker build -t spendgate .                                      # the gateway (core install)
#   docker build -t spendgate:reports --build-arg EXTRAS=reports .  # + the scheduled reports' libraries
#   docker run -p 8787:8787 -v spendgate:/var/lib/spendgate spendgate
#
# Any Debian-like Python >= 3.11 image works as BASE_IMAGE (CI builds one from Debian packages).
# See docs/deploy.md for the compose stack, Kubernetes, and what happens on SIGTERM.
ARG BASE_IMAGE=python:3.12-slim-bookworm

FROM ${BASE_IMAGE} AS build
# Comma-separated extras to install besides the core: reports, parquet, demo, all.
ARG EXTRAS=""
# More pip options; CI installs wheels built on the host: "--no-index --find-links /wheels".
ARG PIP_OPTIONS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/spendgate
# The dependencies first, installed through a stub package from pyproject.toml alone, so this
# layer is reused until the dependencies change rather than on every change to the code.
COPY pyproject.toml README.md /src/
RUN mkdir /src/spendgate && touch /src/spendgate/__init__.py \
 && /opt/spendgate/bin/pip install $PIP_OPTIONS "/src${EXTRAS:+[$EXTRAS]}" \
 && /opt/spendgate/bin/pip uninstall --yes spendgate \
 && rm -rf /src/spendgate /src/build /src/*.egg-info
COPY spendgate /src/spendgate
# pip and setuptools are not needed to run: the image gets the virtualenv without them.
RUN /opt/spendgate/bin/pip install $PIP_OPTIONS --no-deps /src \
 && /opt/spendgate/bin/pip uninstall --yes pip setuptools

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="spendgate" \
      org.opencontainers.image.description="Token-FinOps gateway: meter, attribute and govern every Anthropic and OpenAI call." \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it; its home holds the journal
# (and the SQLite ledger when no SPENDGATE_DATABASE_URL is given).
RUN groupadd --gid 10001 spendgate \
 && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /var/lib/spendgate \
      --shell /usr/sbin/nologin spendgate \
 && install -d -o 10001 -g 10001 /var/lib/spendgate /var/lib/spendgate/spool
COPY --from=build /opt/spendgate /opt/spendgate
ENV PATH=/opt/spendgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SPENDGATE_DATABASE_URL=sqlite:////var/lib/spendgate/spendgate.db \
    SPENDGATE_SPOOL_DIR=/var/lib/spendgate/spool \
    SPENDGATE_PORT=8787
VOLUME ["/var/lib/spendgate"]
WORKDIR /var/lib/spendgate
USER 10001:10001
EXPOSE 8787
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-m", "spendgate.probe", "/healthz"]
# SIGTERM drains: /readyz turns 503, calls in flight finish, the ledger is flushed (docs/deploy.md).
STOPSIGNAL SIGTERM
ENTRYPOINT ["spendgate", "serve", "--host", "0.0.0.0"]
