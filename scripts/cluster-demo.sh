#!/usr/bin/env bash
# A cluster on one machine: PostgreSQL, three Vigil replicas on loopback
# ports sharing it, and nginx in front of them. Shows traffic through nginx
# reaching every replica, a spec changed through one replica in force on all,
# feedback through nginx joined with predictions logged by any replica, drift
# judged on windows merged from every replica (none sees enough alone), one
# leader, and a canary rollout decided by the leader, its leader killed with
# kill -9 in the middle of it and the rollout finished by the next leader,
# each step taken once. Everything runs on 127.0.0.1 and is stopped at the end.
#
#   scripts/cluster-demo.sh            (needs: make build; Debian's postgresql and nginx)
#   KEEP=1 scripts/cluster-demo.sh     leaves the cluster running until Enter
set -euo pipefail
cd "$(dirname "$0")/.."
VIGIL=${VIGIL:-./build/vigil}
[[ -x $VIGIL ]] || { echo "cluster-demo: build first (make build)" >&2; exit 1; }
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || {
  echo "cluster-demo: nginx is not installed (apt-get install nginx)" >&2
  exit 1
}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [[ -n $p ]] && kill "$p" 2>/dev/null || true; done
  [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  scripts/test-postgres.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
say() { printf '\n== %s\n' "$*"; }
failures=0
expect() {  # expect CONDITION-TEXT MESSAGE: counts a failure (the demo doubles as a test)
  if ! eval "$1"; then echo "FAILED: $2" >&2; failures=$((failures + 1)); fi
}
json() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

say "PostgreSQL"
url=$(scripts/test-postgres.sh start "$work/pg")
psql -q "$url" -c "CREATE DATABASE vigil"
store="${url%/*}/vigil"
echo "store: $store"

say "three replicas sharing it"
repo="$work/repository"
mkdir -p "$repo/deployments"
cp -r examples/repository/breast_cancer_mlp examples/repository/breast_cancer_xgb "$repo/"
# Short drift windows that need more rows than one replica gets of the drift below.
cat >>"$repo/breast_cancer_mlp/config.yaml" <<'YAML'
monitoring: {window_seconds: 2, min_window_rows: 150, alert_after: 1, resolve_after: 1}
YAML
echo 'production: {model: breast_cancer_mlp, version: 1}' >"$repo/deployments/cancer.yaml"
ports=()
for i in 0 1 2; do
  port=$(free_port)
  "$VIGIL" serve --model-repository "$repo" --host 127.0.0.1 --http-port "$port" --store "$store" \
    --leader-lease-s 1 --replica-name "replica-$i" --log-level warn >"$work/replica-$i.log" 2>&1 &
  pids+=($!)
  ports+=("$port")
done
for port in "${ports[@]}"; do
  for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$port/v2/health/ready" && break; sleep 0.1; done
  echo "replica 127.0.0.1:$port ready: $(curl -s "http://127.0.0.1:$port/v2/health/ready")"
done

say "nginx in front"
lb=$(free_port)
cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
daemon on;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work;
  proxy_temp_path $work;
  upstream vigil {
    server 127.0.0.1:${ports[0]} max_fails=1 fail_timeout=2s;
    server 127.0.0.1:${ports[1]} max_fails=1 fail_timeout=2s;
    server 127.0.0.1:${ports[2]} max_fails=1 fail_timeout=2s;
    keepalive 16;
  }
  server {
    listen 127.0.0.1:$lb;
    location / {
      proxy_pass http://vigil;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502;
    }
  }
}
NGINX
"$NGINX" -c "$work/nginx.conf" -p "$work"
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$lb/v2/health/live" && break; sleep 0.1; done
echo "load balancer: http://127.0.0.1:$lb"

say "300 requests through nginx"
# The reference's own rows, in turn: traffic that has not drifted.
tail -n +2 examples/repository/breast_cancer_mlp/reference.csv | cut -d, -f1-30 >"$work/rows.csv"
rows=$(wc -l <"$work/rows.csv")
row=$(head -1 "$work/rows.csv")
ids=()
for i in $(seq 1 300); do
  row=$(sed -n "$(((i - 1) % rows + 1))p" "$work/rows.csv")
  id=$(curl -s "http://127.0.0.1:$lb/v2/models/cancer/infer" -H 'Content-Type: application/json' \
    -d "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,30],\"data\":[$row]}],\"parameters\":{\"vigil.routing_key\":\"user-$i\"}}" |
    json 'd["parameters"]["vigil.prediction_id"]')
  ids+=("$id")
done
for port in "${ports[@]}"; do
  n=$(curl -s "http://127.0.0.1:$port/metrics" | awk -F' ' '/^vigil_endpoint_requests_total\{endpoint="cancer",variant="production",outcome="ok"\}/ {print $2}')
  echo "replica :$port answered ${n:-0}"
  expect "[[ ${n:-0} -gt 0 ]]" "replica :$port got none of the traffic"
done

say "a spec changed through replica 1, in force on all within a poll"
curl -sf -X PUT "http://127.0.0.1:${ports[0]}/v1/deployments/cancer" --data-binary @- >/dev/null <<'YAML'
production: {model: breast_cancer_mlp, version: 1}
candidates:
  - {name: v2, model: breast_cancer_mlp, version: 2, mode: ab, share: 40}
YAML
sleep 1.5
for port in "${ports[@]}"; do
  share=$(curl -s "http://127.0.0.1:$port/v1/deployments/cancer/status" |
    json '([v["share"] for v in d["variants"] if v["name"]=="v2"] or ["none"])[0]')
  echo "replica :$port: v2 share $share"
  expect "[[ $share == 40 ]]" "replica :$port does not have the change"
done

say "feedback through nginx, for predictions any replica logged"
sleep 0.5  # the prediction logs' last batches
items=$(printf '{"prediction_id":"%s","label":1},' "${ids[@]}")
reply=$(curl -s "http://127.0.0.1:$lb/v1/feedback" -H 'Content-Type: application/json' -d "[${items%,}]")
json '"accepted %d, joined %d, unknown %d" % (d["accepted"], d["joined"], d["unknown"])' <<<"$reply"
expect "[[ $(json 'd["joined"]' <<<"$reply") == 300 ]]" "not every prediction was joined"

say "drift through nginx: 300 requests with every feature tripled, about 100 per replica"
before=()
for port in "${ports[@]}"; do
  before+=("$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^vigil_inference_requests_total\{model="breast_cancer_mlp",version="1"/ {n += $2} END {print n + 0}')")
done
calm=$(curl -s "http://127.0.0.1:${ports[0]}/v1/alerts" |
  json 'sum(1 for a in d["firing"] + d["pending"] if a["alertname"] == "DatasetDrift")')
echo "before it: DatasetDrift firing or pending: $calm (the reference's own rows do not drift)"
expect "[[ $calm == 0 ]]" "the reference's own rows were judged drifted"
sent=$(date +%s.%N)
/usr/bin/python3 scripts/cluster_traffic.py drift "http://127.0.0.1:$lb" breast_cancer_mlp 1 --rows "$work/rows.csv" --requests 300 --scale 3
took=$(echo "$(date +%s.%N) - $sent" | bc)
for i in 0 1 2; do
  n=$(curl -s "http://127.0.0.1:${ports[$i]}/metrics" | awk '/^vigil_inference_requests_total\{model="breast_cancer_mlp",version="1"/ {n += $2} END {print n + 0}')
  echo "replica-$i served $((n - ${before[$i]})) of them (min_window_rows 150: too few to judge alone)"
done
drifted=""
for _ in $(seq 1 150); do
  drifted=$(curl -s "http://127.0.0.1:${ports[2]}/v1/monitoring/breast_cancer_mlp/drift?limit=20" |
    json '" ".join(str(w["rows"]) for w in d["windows"] if w["version"] == 1 and w["dataset_drift"] and w["end_ms"] > '"${sent%.*}"' * 1000)')
  [[ -n $drifted ]] && break
  sleep 0.1
done
printf 'merged windows with dataset drift (rows): %s, seen %.1f s after the drift began (sending it took %.1f s)\n' \
  "${drifted:-none}" "$(echo "$(date +%s.%N) - $sent" | bc)" "$took"
expect "[[ -n '$drifted' ]]" "no merged window found the drift"
firing=0
for i in 0 1 2; do
  for _ in $(seq 1 50); do
    alerts=$(curl -s "http://127.0.0.1:${ports[$i]}/v1/alerts")
    f=$(json 'sum(1 for a in d["firing"] if a["alertname"] == "DatasetDrift" and a["labels"].get("version") == "1")' <<<"$alerts")
    [[ $f == 1 ]] && break
    sleep 0.1
  done
  echo "replica-$i: DatasetDrift of breast_cancer_mlp v1 firing: $f"
  [[ $f == 1 ]] && firing=$((firing + 1))
done
expect "[[ $firing == 3 ]]" "the drift alert is not in force on every replica"
stored=$(json 'sum(1 for e in d["recent"] if e["alertname"] == "DatasetDrift" and e["state"] == "firing" and e["labels"].get("version") == "1")' <<<"$alerts")
echo "its firing transition stored $stored time(s)"
expect "[[ $stored == 1 ]]" "the drift alert was stored more than once"

say "who leads"
leader=-1
for i in 0 1 2; do
  r=$(curl -s "http://127.0.0.1:${ports[$i]}/v2/health/ready")
  echo "replica :${ports[$i]}: $r"
  [[ $(json 'd["leader"]' <<<"$r") == True ]] && leader=$i
done
[[ $leader -ge 0 ]] || { echo "FAILED: no replica leads" >&2; exit 1; }

say "a canary rollout, applied through a follower, decided by the leader"
follower=$(((leader + 1) % 3))
curl -sf -X PUT "http://127.0.0.1:${ports[$follower]}/v1/deployments/cancer" --data-binary @- >/dev/null <<'YAML'
production: {model: breast_cancer_mlp, version: 1}
candidates:
  - {name: v2, model: breast_cancer_mlp, version: 2, mode: canary, steps: [20, 50]}
rollout:
  candidate: v2
  interval_s: 1
  min_units: 150
  min_duration_s: 0
  max_duration_s: 600
  metric: {name: mean_reward}
  guardrails: {error_rate: {margin: 0.05}}
YAML
expect "/usr/bin/python3 scripts/cluster_traffic.py rollout http://127.0.0.1:$lb cancer --rows '$work/rows.csv' --until-step 2" \
  "the rollout did not reach its second step"

say "kill -9 the leader (replica-$leader) in the middle of the rollout"
kill -9 "${pids[$leader]}"
start=$(date +%s.%N)
new=-1
while [[ $new -lt 0 ]]; do
  for i in 0 1 2; do
    [[ $i == "$leader" ]] && continue
    [[ $(curl -s "http://127.0.0.1:${ports[$i]}/v2/health/ready" | json 'd.get("leader")') == True ]] && new=$i
  done
  sleep 0.1
  [[ $(echo "$(date +%s.%N) - $start > 30" | bc) == 1 ]] && { echo "no new leader in 30 s" >&2; exit 1; }
done
printf 'replica-%s leads (epoch %s) after %.1f s\n' "$new" \
  "$(curl -s "http://127.0.0.1:${ports[$new]}/v2/health/ready" | json 'd["leader_epoch"]')" \
  "$(echo "$(date +%s.%N) - $start" | bc)"
ok=0
for i in $(seq 1 50); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$lb/v2/models/cancer/infer" -H 'Content-Type: application/json' \
    -d "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,30],\"data\":[$row]}]}")
  [[ $code == 200 ]] && ok=$((ok + 1))
done
echo "through nginx after the kill: $ok of 50 answered"
expect "[[ $ok == 50 ]]" "requests failed after the leader was killed"

say "the new leader finishes the rollout"
expect "/usr/bin/python3 scripts/cluster_traffic.py rollout http://127.0.0.1:$lb cancer --rows '$work/rows.csv' --until-phase Successful" \
  "the rollout was not finished after the leader died"
history=$(curl -s "http://127.0.0.1:${ports[$new]}/v1/deployments/cancer/history")
steps=$(json '" ".join(e["action"].split()[1] + ":" + e["detail"].split(";")[0][:40] for e in reversed(d) if e["action"].startswith("rollout "))' <<<"$history")
echo "rollout actions, oldest first: $steps"
promotes=$(json 'sum(1 for e in d if e["action"] == "rollout promote")' <<<"$history")
weights=$(json 'sum(1 for e in d if e["action"] == "rollout weight")' <<<"$history")
expect "[[ $promotes == 1 ]]" "the candidate was promoted $promotes times"
expect "[[ $weights == 2 ]]" "the rollout took $weights weight steps (2 expected: 20 and 50)"
rollout=$(curl -s "http://127.0.0.1:${ports[$new]}/v1/deployments/cancer/rollout")
epochs=$(json '" ".join(sorted({str(a.get("epoch", "?")) for a in d.get("analyses", [])}))' <<<"$rollout")
echo "epochs of the analyses kept: $epochs"
expect "[[ '$epochs' == '1 2' ]]" "the analyses were not split between the two leaders"
# The guardrails count every replica's requests and errors (each replica writes its
# counts every poll), not only the leader's.
arms=$(json '" ".join("%s:%d/%d" % (a["variant"], a["requests"], a["predictions"]) for a in d["analyses"][0]["evidence"]["arms"])' <<<"$rollout")
echo "last analysis, requests counted / predictions logged per arm: $arms (counts are up to a poll old)"
counted=$(psql -qtA "$store" -c "SELECT count(DISTINCT replica) FROM frontend_counts WHERE endpoint = 'cancer' AND requests > 0")
echo "replicas whose frontend counts are in the store: $counted"
expect "[[ $counted == 3 ]]" "the guardrails did not count every replica's requests"

if [[ -n ${KEEP:-} ]]; then
  echo "cluster up: http://127.0.0.1:$lb (Enter stops it)"
  read -r
fi
if [[ $failures -gt 0 ]]; then
  echo "cluster demo: $failures check(s) failed" >&2
  exit 1
fi
echo
echo "cluster demo: every check passed"
