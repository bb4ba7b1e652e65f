# Shared by the bench scripts (sourced): an output folder, a scratch folder
# removed on exit, and the background servers they start (in `pids`).
out=bench/out
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {  # wait_http URL
  for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done  # -f: until it answers 2xx
  echo "bench: $1 did not come up" >&2; return 1
}
stop_all() {
  for p in "${pids[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [[ -n "$p" ]] && wait "$p" 2>/dev/null || true; done
  pids=()
}
py() { /usr/bin/python3 -c "$1"; }

# example_repo MODEL...: $repo, a copy of those example models (with an
# empty deployments/ folder) set to max_queue_delay_us 0: batches form from
# whatever waits while an instance is busy, and a request that finds the
# instance idle runs on the thread that received it.
example_repo() {
  repo="$work/repository"
  mkdir -p "$repo/deployments"
  for m in "$@"; do cp -r "examples/repository/$m" "$repo/"; done
  sed -i 's/max_queue_delay_us: [0-9]*/max_queue_delay_us: 0/' "$repo"/*/config.yaml
}

# start_vigil REPOSITORY: `vigil serve` on a free port ($port) with its store
# in the scratch folder; returns once it is ready. SERVER_CPUS (e.g. 0)
# pins it to those cores; VIGIL_BIN (default ./build/vigil) picks the binary.
start_vigil() {
  port=$(free_port)
  ${SERVER_CPUS:+taskset -c "$SERVER_CPUS"} "${VIGIL_BIN:-./build/vigil}" serve --model-repository "$1" --http-port "$port" --host 127.0.0.1 --log-level warn \
    --data-dir "$work/data" &
  pids+=($!)
  wait_http "http://127.0.0.1:$port/v2/health/ready"
}

# start_nginx WORKERS KEEPALIVE_REQUESTS: nginx on a free port ($port) answering
# every POST with a constant inference reply, and /v2/models/x with metadata
# (so `vigil bench` can run against it).
start_nginx() {
  port=$(free_port)
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes $1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$port;
    keepalive_requests $2;
    location = /v2/models/x {
      default_type application/json;
      return 200 '{"name":"x","versions":["1"],"platform":"onnx_onnxv1","inputs":[{"name":"features","datatype":"FP32","shape":[-1,30]}],"outputs":[{"name":"probabilities","datatype":"FP32","shape":[-1,2]}]}';
    }
    location / {
      default_type application/json;
      return 200 '{"model_name":"x","model_version":"1","outputs":[{"name":"probabilities","datatype":"FP32","shape":[1,2],"data":[0.01,0.99]}]}';
    }
  }
}
NGINX
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
  pids+=($!)
  wait_http "http://127.0.0.1:$port/"
}
