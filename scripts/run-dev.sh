#!/usr/bin/env bash
# The whole live demo (`make run`): prepare the database, then run side by side the web server,
# a Celery worker, the MQTT ingestor and the device simulator, each line prefixed with its
# name. Ctrl-C (or SIGTERM) stops them all; so does the web server exiting.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
CELERY=${CELERY:-$(dirname "$PY")/celery}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
export PYTHONUNBUFFERED=1

# reachable URL DEFAULT_PORT: can a TCP connection be made to the URL's host and port?
reachable() {
  local rest=${1#*://}
  rest=${rest##*@}
  rest=${rest%%/*}
  local host=${rest%:*} port=${rest##*:}
  if [ "$host" = "$rest" ]; then port=$2; fi
  timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
}

# This machine's Redis and Mosquitto when they answer (and nothing else says otherwise);
# without them the demo still runs: in-process channel layer, eager Celery, HTTPS devices.
if [ -z "${REDIS_URL:-}" ] && reachable redis://127.0.0.1:6379 6379; then
  export REDIS_URL=redis://127.0.0.1:6379/0
fi
if [ -z "${MQTT_URL:-}" ] && reachable mqtt://127.0.0.1:1883 1883; then
  export MQTT_URL=mqtt://127.0.0.1:1883
fi

mkdir -p "${VAR_DIR:-var}"  # runtime files (SQLite database, beat schedule, dev secrets)
"$PY" manage.py migrate --noinput
"$PY" manage.py load_reference_data
"$PY" manage.py seed_demo

pids=()
# start NAME COMMAND...: in its own process group (so stopping it stops its children too).
start() {
  local name=$1
  shift
  setsid "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
  pids+=("$!")
}

stop_all() {
  trap - INT TERM EXIT
  local pid alive
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap stop_all EXIT

echo ""
echo "Virtual hospital on http://$HOST:$PORT/  (Ctrl-C stops everything)"
start web "$PY" manage.py runserver "$HOST:$PORT"
web=$!

if [ -n "${REDIS_URL:-}" ] && reachable "$REDIS_URL" 6379; then
  start celery "$CELERY" -A virtualhospital worker --beat --loglevel INFO --concurrency 2
else
  echo "[run] Redis is not reachable at $REDIS_URL: no Celery worker (tasks will not run)" >&2
fi

simulate=("$PY" manage.py simulate_devices --patients 8 --rate 5 --duration 0 --anomalies)
if [ -n "${MQTT_URL:-}" ] && reachable "$MQTT_URL" 1883; then
  start ingest "$PY" manage.py ingest_mqtt
  start simulate "${simulate[@]}"
else
  echo "[run] no MQTT broker at $MQTT_URL: no ingestor; the simulator posts over HTTP" >&2
  # The simulator waits for the web server to listen before its first POST.
  start simulate bash -c 'for _ in $(seq 600); do
      (exec 3<>"/dev/tcp/$0/$1") 2>/dev/null && exec "${@:2}"; sleep 0.1; done
    echo "the web server did not start" >&2; exit 1' \
    "$HOST" "$PORT" "${simulate[@]}" --http --url "http://$HOST:$PORT"
fi

set +e
wait "$web"
status=$?
exit "$status"
