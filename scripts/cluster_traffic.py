#!/usr/bin/env python3
"""Traffic for scripts/cluster-demo.sh, through one address (the load balancer).

  cluster_traffic.py rollout URL ENDPOINT --rows FILE [--until-step N | --until-phase P]
      Rounds of requests, each from a new routing key, then one feedback post
      of rewards drawn per variant (the candidate better), until the rollout
      reaches the step or phase. Prints the rollout's phase and step.
  cluster_traffic.py drift URL MODEL VERSION --rows FILE --requests N --scale S
      N requests to one model version with every feature multiplied by S.

Requests take FILE's rows (comma-separated feature values, one per line) in turn.

Bounded in rounds and seconds; exits 1 when a request fails or the bound runs out.
"""
import argparse
import http.client
import json
import random
import sys
import time
import urllib.parse


class Client:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        if u.hostname not in ("127.0.0.1", "localhost"):
            sys.exit("cluster_traffic: loopback addresses only")
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        for attempt in range(2):  # one retry on a dropped keep-alive connection
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                return r.status, json.loads(r.read() or b"null")
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def infer_body(row, key=None):
    body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, len(row)], "data": row}]}
    if key:
        body["parameters"] = {"vigil.routing_key": key}
    return body


def rollout(c, a, rows):
    rng = random.Random(7)
    reward = {"production": a.reward_production, "candidate": a.reward_candidate}
    unit = 0
    deadline = time.monotonic() + a.max_seconds
    for _ in range(a.max_rounds):
        status, r = c.call("GET", f"/v1/deployments/{a.endpoint}/rollout")
        if status == 200 and ((a.until_step and r.get("step", 0) >= a.until_step)
                              or (a.until_phase and r.get("phase") == a.until_phase)):
            print(f"rollout {a.endpoint}: phase {r.get('phase')}, step {r.get('step')} of {r.get('steps')}")
            return 0
        if time.monotonic() > deadline:
            break
        feedback = []
        for _ in range(a.round):
            unit += 1
            row = rows[unit % len(rows)]
            status, d = c.call("POST", f"/v2/models/{a.endpoint}/infer", infer_body(row, f"unit-{unit}"))
            if status != 200:
                print(f"request failed: {status} {d}", file=sys.stderr)
                return 1
            p = d["parameters"]
            arm = "production" if p["vigil.variant"] == "production" else "candidate"
            feedback.append({"prediction_id": p["vigil.prediction_id"],
                             "reward": 1 if rng.random() < reward[arm] else 0})
        status, d = c.call("POST", "/v1/feedback", feedback)
        if status != 200:
            print(f"feedback failed: {status} {d}", file=sys.stderr)
            return 1
    status, r = c.call("GET", f"/v1/deployments/{a.endpoint}/rollout")
    print(f"rollout {a.endpoint} did not get there: {json.dumps(r)[:2000]}", file=sys.stderr)
    return 1


def drift(c, a, rows):
    path = f"/v2/models/{a.model}/versions/{a.version}/infer"
    for i in range(a.requests):
        shifted = [v * a.scale for v in rows[i % len(rows)]]
        status, d = c.call("POST", path, infer_body(shifted))
        if status != 200:
            print(f"request failed: {status} {d}", file=sys.stderr)
            return 1
    print(f"{a.requests} requests to {a.model} v{a.version}, features x{a.scale}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("rollout")
    r.add_argument("url")
    r.add_argument("endpoint")
    r.add_argument("--until-step", type=int, default=0)
    r.add_argument("--until-phase", default="")
    r.add_argument("--reward-production", type=float, default=0.3)
    r.add_argument("--reward-candidate", type=float, default=0.7)
    r.add_argument("--round", type=int, default=100)
    r.add_argument("--max-rounds", type=int, default=300)
    r.add_argument("--max-seconds", type=float, default=180)
    d = sub.add_parser("drift")
    d.add_argument("url")
    d.add_argument("model")
    d.add_argument("version", type=int)
    d.add_argument("--requests", type=int, default=300)
    d.add_argument("--scale", type=float, default=3)
    for s in (r, d):
        s.add_argument("--rows", required=True, help="a file of comma-separated feature values, a row per line")
    a = p.parse_args()
    with open(a.rows) as f:
        rows = [[float(v) for v in line.split(",")] for line in f if line.strip()]
    if not rows:
        sys.exit("cluster_traffic: no rows in " + a.rows)
    c = Client(a.url)
    return rollout(c, a, rows) if a.mode == "rollout" else drift(c, a, rows)


if __name__ == "__main__":
    sys.exit(main())
