# One image for the six edgebus services; compose runs it as `edgebus run SERVICE`.
#
#   docker build -t edgebus:local .                                  # deps from PyPI
#   docker build --network host --build-arg WHEELHOUSE=wheelhouse \
#                -t edgebus:local .                                  # offline, from wheels
#
# WHEELHOUSE is a directory inside the build context holding wheels of every dependency
# (plus setuptools and wheel, the build backend), e.g. made on the host with
#   python3.11 -m pip wheel -w wheelhouse . 'setuptools>=68' wheel 'async-timeout>=4.0.3'
# (async-timeout: redis-py needs it on CPython < 3.11.3, which the host may not be).
# With it, pip never touches the network (scripts/test_compose.sh builds this way).
# Works with the classic builder and with BuildKit.

FROM python:3.11-slim AS build
ARG WHEELHOUSE=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY . /src
RUN python3 -m venv /opt/edgebus \
 && if [ -n "$WHEELHOUSE" ]; then \
      test -d "/src/$WHEELHOUSE" || { echo "WHEELHOUSE=$WHEELHOUSE is not a directory of the build context" >&2; exit 1; }; \
      export PIP_NO_INDEX=1 PIP_FIND_LINKS="/src/$WHEELHOUSE"; \
    fi \
 && /opt/edgebus/bin/pip install /src \
 && /opt/edgebus/bin/edgebus --help >/dev/null

FROM python:3.11-slim
# Non-root; no home, no shell login; the project's conf/ is its only data (compose can
# mount ./conf over it so `param.reload` sees edited files).
RUN useradd --system --user-group --uid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin edgebus
COPY --from=build /opt/edgebus /opt/edgebus
COPY conf/ /app/conf/
WORKDIR /app
ENV PATH=/opt/edgebus/bin:$PATH \
    EDGEBUS_HOME=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER edgebus
# Services listen on 127.0.0.1 unless told otherwise (compose sets EDGEBUS_HTTP_HOST).
EXPOSE 8001 8002 8003 8004 8005 8006
CMD ["edgebus", "--help"]
