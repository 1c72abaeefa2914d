# A minimal image of the product: the wheel (with its templates and migrations) in a
# slim Python, run as an unprivileged user. Not built by CI (its machines have no
# container runtime); tests/test_deploy_files.py checks that the commands it runs exist.
#
#   docker build -t campaign .
#   docker run --rm -v $PWD/config.toml:/etc/campaign/config.toml:ro \
#       --env-file secrets.env -p 9108:9108 campaign
#
# In a container set [daemon] health_host = "0.0.0.0" so /healthz and /metrics can be
# reached from outside, and CAMPAIGN_MODEL_KEY in the environment (the config is
# mounted read-only, so no key file can be made beside it).

FROM python:3.12-slim AS build
COPY . /src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist /src

FROM python:3.12-slim
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir /tmp/dist/*.whl && rm -rf /tmp/dist \
    && useradd --system --create-home --home-dir /var/lib/campaign campaign
USER campaign
WORKDIR /var/lib/campaign
EXPOSE 9108 8080
HEALTHCHECK CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=5)"]
ENTRYPOINT ["campaign"]
CMD ["daemon", "--config", "/etc/campaign/config.toml", "--json-logs"]
