# The agentstream image used by docker-compose.yml (worker, migrate, produce): the built
# wheel with every extra, as a user would install it (no checkout inside the image).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agentstream ./agentstream
RUN pip wheel --no-cache-dir --no-deps -w /dist .

FROM python:3.11-slim
COPY --from=build /dist /dist
RUN pip install --no-cache-dir "$(ls /dist/agentstream-*.whl)[all]" && rm -rf /dist
USER nobody
ENTRYPOINT []
CMD ["agentstream", "worker"]
