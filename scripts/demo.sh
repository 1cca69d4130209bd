#!/usr/bin/env bash
# `make demo`: the whole pipeline on about a minute of synthetic agent traffic.
# Expects `make install services migrate` to have run (the Makefile does that first).
#
#   DEMO_SECONDS=60 DEMO_RATE=1500 DEMO_WORKERS=2 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
DEMO_SECONDS="${DEMO_SECONDS:-60}"
DEMO_RATE="${DEMO_RATE:-1500}"      # records per second published by the load generator
DEMO_WORKERS="${DEMO_WORKERS:-2}"   # workers in one consumer group share the partitions
OUT="${AGENTSTREAM_OUTPUT_DIR:-out}/demo"   # the demo's own: emptied at every run
LOGS=.services/demo
rm -rf "$OUT"
mkdir -p "$LOGS" "$OUT"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

pids=()
stop_workers() {
    ((${#pids[@]})) || return 0
    say "stopping the workers (SIGTERM: they finish the batch in flight, commit, exit)"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap stop_workers EXIT

say "a sandbox for the demo: its own database and topics (your own data is not touched)"
eval "$($BIN/python scripts/demo_setup.py "$OUT")"

say "migrating the demo database"
$BIN/agentstream migrate

# A minute of traffic, a simulated day: sessions start ~60 s apart on the simulated clock
# (1,500 records/s make ~25 sessions/s), from 24 hours ago, so the report has a day of
# hourly buckets. The window runs to a day ahead: simulated sessions may end after now.
start=$(date -u -d '-24 hours' +%Y-%m-%dT%H:%M:%S+00:00)
since=$(date -u -d '-24 hours' +%Y-%m-%dT%H:00:00)
until=$(date -u -d '+1 day' +%Y-%m-%d)

say "starting $DEMO_WORKERS worker(s) (logs in $LOGS/)"
for i in $(seq 1 "$DEMO_WORKERS"); do
    port=$((9463 + i))
    AGENTSTREAM_WORKER_METRICS_PORT=$port $BIN/agentstream worker >"$LOGS/worker-$i.log" 2>&1 &
    pids+=($!)
    echo "  worker $i: pid ${pids[-1]}, metrics http://127.0.0.1:$port/metrics"
done

say "producing ${DEMO_SECONDS}s of agent traffic at ~${DEMO_RATE} records/s (a simulated day)"
$BIN/agentstream produce --duration "$DEMO_SECONDS" --rate "$DEMO_RATE" --seed 7 --progress \
    --start "$start" --session-gap 60

say "an agent already on OpenTelemetry: one env var points its exporter at \`agentstream otlp\`"
otlp_port="${DEMO_OTLP_PORT:-4318}"
$BIN/agentstream otlp --port "$otlp_port" >"$LOGS/otlp.log" 2>&1 &
otlp_pid=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$otlp_port/healthz" >/dev/null 2>&1 && break
    sleep 0.2
done
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp_port" $BIN/python scripts/demo_otel.py 60
sleep 2  # the intake's resolver maps the calls whose agent span came in a later batch
curl -fs "http://127.0.0.1:$otlp_port/metrics" | grep -E '^otlp_spans_(received|mapped|dropped|rejected)_total' || true
kill -TERM "$otlp_pid"
wait "$otlp_pid" || true

say "publishing 4 malformed messages the way a buggy producer would (plain Kafka, no SDK)"
$BIN/python - <<'PY'
import asyncio, json, uuid
from aiokafka import AIOKafkaProducer
from agentstream.contract.settings import get_settings
from agentstream.contract.topics import topic_for

async def main() -> None:
    s = get_settings()
    bad = [
        ("events", b"{not json"),
        ("events", json.dumps({"id": str(uuid.uuid4()), "event_type": "tool\u0000call",
                               "trace_id": str(uuid.uuid4()), "session_id": str(uuid.uuid4()),
                               "user_id": "demo", "timestamp_ms": 1764172800000,
                               "payload": {}}).encode()),
        ("llm_interactions", json.dumps([{"id": "not-a-uuid", "model": "gpt-4o"}]).encode()),
        ("sessions", json.dumps({"id": str(uuid.uuid4()), "user_id": "u" * 300}).encode()),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, **s.kafka_client_options())
    await producer.start()
    try:
        for entity, value in bad:
            await producer.send_and_wait(topic_for(entity, s.topic_prefix), value)
    finally:
        await producer.stop()

asyncio.run(main())
PY

say "waiting for the workers to drain what was published"
$BIN/agentstream status --wait-drained --timeout 300

stop_workers

say "dead letters: each malformed record with its reason and where it came from"
$BIN/agentstream dlq list

say "rolling up cost and latency"
$BIN/agentstream rollup

say "cost and latency report"
$BIN/agentstream report --since "$since" --until "$until" --by model --html "$OUT/report.html"

say "Parquet exports (the six tables and the two rollups)"
$BIN/agentstream export all --out "$OUT/parquet"

session_id=$($BIN/python - <<'PY'
import psycopg
from agentstream.contract.settings import get_settings
with psycopg.connect(get_settings().database_conninfo()) as conn:
    row = conn.execute(
        "SELECT session_id FROM llm_interactions GROUP BY session_id ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()
print(row[0] if row else "")
PY
)
if [[ -n "$session_id" ]]; then
    say "the busiest session's timeline (first lines)"
    $BIN/agentstream session "$session_id" | head -n 25 || true
fi

say "done"
cat <<MSG
  HTML report:     $OUT/report.html
  Parquet files:   $OUT/parquet/  (read them with pandas, pyarrow, DuckDB or Spark)
  Worker logs:     $LOGS/
  Demo settings:   $OUT/demo.env  (database agentstream_demo, topics $AGENTSTREAM_TOPIC_PREFIX*)
Try next, in this shell after: set -a; . $OUT/demo.env; set +a
  .venv/bin/agentstream report --by user --format csv
  .venv/bin/agentstream session $session_id --json
  .venv/bin/agentstream dlq show --limit 5
Kafka and PostgreSQL are still running; stop them with: make services-down
MSG
