# The agentstream image used by docker-compose.yml (worker, migrate, produce).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY agentstream ./agentstream
COPY producers ./producers
COPY streams ./streams
COPY sinks ./sinks
COPY analytics ./analytics
COPY sql ./sql
RUN pip install --no-cache-dir -e .
USER nobody
ENTRYPOINT []
CMD ["agentstream", "worker"]
