#!/usr/bin/python3
"""Writes the seed corpus of each fuzz target into tests/fuzz/corpus/<target>/
from the project's own examples: the example configs and reference.csv, the
README's deployment spec, and requests like those the tests send. Run again
after changing what a target reads; the files it writes are committed.

  /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import json
import os
import pathlib
import struct
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fuzz" / "corpus"
REPO = ROOT / "examples" / "repository"


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def features(rows, start=1.0):
    return [[round(start + 0.1 * c + 0.01 * r, 4) for c in range(30)] for r in range(rows)]


def requests():
    yield "flat", {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 30],
                               "data": features(1)[0]}]}
    yield "nested", {"id": "r1", "inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 30],
                                             "data": features(2)}]}
    yield "params_outputs", {
        "id": "0190b5d2-7a3e-7c11-9c5e-2f6a1b3c4d5e",
        "parameters": {"priority": 1, "timeout": 5000, "vigil.routing_key": "user-17", "binary_data_output": False},
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 30], "data": features(1)[0]}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}, {"name": "logits"}]}
    yield "types", {"inputs": [
        {"name": "b", "datatype": "BOOL", "shape": [3], "data": [True, False, 1]},
        {"name": "i8", "datatype": "INT8", "shape": [2], "data": [-128, 127]},
        {"name": "u16", "datatype": "UINT16", "shape": [1, 2], "data": [[0, 65535]]},
        {"name": "i64", "datatype": "INT64", "shape": [2], "data": [-9223372036854775808, 9223372036854775807]},
        {"name": "u64", "datatype": "UINT64", "shape": [1], "data": [18446744073709551615]},
        {"name": "f64", "datatype": "FP64", "shape": [2], "data": [1e-300, -2.5]},
        {"name": "s", "datatype": "BYTES", "shape": [2], "data": ["a", "\u00e9t\u00e9"]}]}


def main():
    # OIP JSON requests (and, with a header length, the binary extension).
    for name, body in requests():
        text = json.dumps(body)
        write("fuzz_oip_json", name + ".json", text)
        write("fuzz_http_request", name + ".http",
              f"\x05POST /v2/models/breast_cancer_mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(text)}\r\n\r\n{text}")
        write("fuzz_oip_binary", name + ".bin", b"\xff\xff" + text.encode())
    write("fuzz_oip_json", "nan.json", '{"inputs":[{"name":"x","datatype":"FP32","shape":[3],'
                                       '"data":[NaN,Infinity,-Infinity]}]}')
    values = struct.pack("<30f", *features(1)[0])
    header = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 30],
                                     "parameters": {"binary_data_size": len(values)}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}).encode()
    write("fuzz_oip_binary", "binary.bin", struct.pack("<H", len(header)) + header + values)
    write("fuzz_oip_binary", "raw_body.bin", b"\x00\x00" + struct.pack("<4f", 1, 2, 3, 4))
    bytes_header = json.dumps({"inputs": [{"name": "s", "datatype": "BYTES", "shape": [2],
                                           "parameters": {"binary_data_size": 11}}]}).encode()
    write("fuzz_oip_binary", "bytes.bin", struct.pack("<H", len(bytes_header)) + bytes_header +
          struct.pack("<I", 2) + b"ab" + struct.pack("<I", 1) + b"c")

    # HTTP requests as a client sends them (the first byte picks the read size).
    http = {
        "live.http": "\x01GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n",
        "pipelined.http": "\x10GET /v2 HTTP/1.1\r\nHost: x\r\n\r\nGET /v2/models/m/versions/2/ready HTTP/1.1\r\n"
                          "Host: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        "chunked.http": "\x07POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "a\r\n{\"inputs\":\r\n2\r\n[]\r\n1\r\n}\r\n0\r\n\r\n",
        "binary.http": "\x20POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nInference-Header-Content-Length: "
                       f"{len(header)}\r\nContent-Length: {len(header) + len(values)}\r\n\r\n",
        "load.http": "\x09POST /v2/repository/models/m/load HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0ken\r\n"
                     "Content-Length: 39\r\n\r\n{\"parameters\":{\"config\":\"backend: x\"}}",
        "index.http": "\x03POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n{\"ready\":true}",
        "encoded.http": "\x02GET /v2/models/%2e%2e%2Fm%ff/versions/%31/config?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        "rollout.http": "\x11GET /v1/deployments/ep/rollout?analyses=5 HTTP/1.1\r\nHost: x\r\n\r\n"
                        "POST /v1/deployments/ep/rollout/promote?full=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                        "t0ken\r\nContent-Length: 14\r\n\r\n{\"full\": true}"
                        "GET /v1/deployments/ep/shadow?window_s=60 HTTP/1.1\r\nHost: x\r\n\r\n",
        "benchmark.http": "\x13GET /v1/deployments/ep/benchmark?limit=3 HTTP/1.1\r\nHost: x\r\n\r\n"
                          "POST /v1/deployments/ep/benchmark HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0ken\r\n"
                          "Content-Length: 47\r\n\r\n{\"since_s\": 60, \"metric\": \"mse\", \"max_rows\": 9}"
                          "POST /v1/deployments/ep/benchmark/start HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                          "t0ken\r\nContent-Length: 33\r\n\r\n{\"contender\": \"v2\", \"steps\": [5]}",
        "continue.http": "\x40POST /v1/feedback HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         "Content-Length: 35\r\n\r\n{\"prediction_id\":\"p\",\"label\":1}   ",
    }
    for name, text in http.items():
        data = text.encode("latin-1")
        write("fuzz_http_request", name, data + (values if name == "binary.http" else b""))
    write("fuzz_http_request", "binary.http",
          http["binary.http"].encode("latin-1") + header + values)

    # Model configs: the examples' own, and one with every block.
    for model in sorted(REPO.iterdir()):
        write("fuzz_model_config", model.name + ".yaml", (model / "config.yaml").read_bytes())
    write("fuzz_model_config", "everything.yaml", """backend: onnx
max_batch_size: 8
inputs: [{name: x, datatype: FP32, shape: [4]}, {name: y, datatype: FP32, shape: [-1, 2]}]
outputs: [{name: p, datatype: FP32, shape: [2]}]
dynamic_batching: {max_queue_delay_us: 100, preferred_batch_sizes: [2, 8], max_queue_size: 10, default_timeout_us: 5}
instances: {count: 2}
version_policy: {specific: [1, 3]}
warmup: {batch_size: 2, iterations: 1}
monitoring:
  features: [{name: a, index: 0}, {name: plan, index: 3, type: categorical}]
  reference_rows: 100
  window_seconds: 1.5
  window_rows: 1000
  min_window_rows: 10
  bins: 5
  numeric_method: ks
  categorical_method: chi2
  drift_share: 0.3
  quality: {metric: auc, below: 0.7, drop: 0.05, window_s: 60, min_labels: 5}
  health: {latency_p99_ms: 50, error_rate: 0.01, queue_saturation: 0.5, min_requests: 3}
""")
    write("fuzz_model_config", "ensemble.yaml", """backend: ensemble
max_batch_size: 64
inputs: [{name: features, datatype: FP32, shape: [30]}]
outputs: [{name: probabilities, datatype: FP32, shape: [2]}]
ensemble:
  members: [{model: a, weight: 2}, {model: b, version: 3, output: probs}]
  combine: vote
  min_members: 1
""")
    write("fuzz_model_config", "backend_options.yaml", """backend: torchscript
max_batch_size: 8
inputs: [{name: x, datatype: FP32, shape: [4]}]
outputs: [{name: p, datatype: FP32, shape: [2]}]
backend_options: {optimize: optimize_for_inference, intra_op_threads: 2}
""")
    write("fuzz_model_config", "xgboost_options.yaml", """backend: xgboost
max_batch_size: 8
inputs: [{name: x, datatype: FP32, shape: [4]}]
outputs: [{name: p, datatype: FP32, shape: [2]}]
backend_options: {intra_op_threads: 1, iteration_end: 40, inplace: false}
""")
    write("fuzz_model_config", "json.yaml", json.dumps({
        "backend": "xgboost", "max_batch_size": 4, "inputs": [{"name": "x", "datatype": "FP32", "shape": [3]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [2]}], "monitoring": False}))

    # Deployment specs over models a, b and c (the fuzz target's catalog).
    write("fuzz_deployment_spec", "readme.yaml", """production: {model: a, version: 1}
routing_key: {parameter: vigil.routing_key, header: X-Vigil-Routing-Key}
candidates:
  - {name: v2, model: a, version: 2, mode: ab, share: 10}
  - {name: xgb, model: b, mode: canary, steps: [1, 5, 25, 50], step: 0}
  - {name: onnx, model: c, mode: shadow, share: 20}
flags:
  - name: beta
    variant: v2
    rules:
      - {parameter: country, in: [FR, DE]}
      - {header: X-App-Version, semver: ">=2.3.0"}
      - {parameter: age, op: ">=", value: 18}
      - {parameter: email, regex: ".*@example\\\\.com"}
      - {percent: 20}
kill_switch: false
paused: false
monitoring:
  quality: {metric: accuracy, drop: 0.05, window_s: 3600, min_labels: 30}
  health: {latency_p99_ms: 50, error_rate: 0.01, min_requests: 20}
  alert_after: 3
  resolve_after: 3
""")
    write("fuzz_deployment_spec", "rollout.yaml", """production: {model: a, version: 1}
candidates:
  - {name: v2, model: a, version: 2, mode: canary, steps: [5, 25, 50], mirror: 100}
rollout:
  candidate: v2
  interval_s: 60
  min_units: 1000
  min_duration_s: 600
  max_duration_s: 86400
  metric: {name: mean_reward, direction: higher, min_effect: 0.0, no_feedback: zero}
  alpha: 0.05
  guardrails:
    error_rate: {margin: 0.005}
    latency_p99_ms: {margin: 5}
  srm_p: 0.001
  on_success: promote
  on_inconclusive: hold
  max_errors: 10
  shadow_first: {min_units: 5000, max_disagreement: 0.05, share: 100}
""")
    write("fuzz_deployment_spec", "json.yaml", json.dumps({
        "production": {"model": "b"}, "candidates": [{"name": "n", "model": "c", "mode": "ab", "share": 12.5}],
        "flags": [{"name": "f", "variant": "production", "rules": [{"parameter": "x", "not_in": ["1", "2"]}]}]}))

    # reference.csv: the first byte is the row width the target reads with.
    csv = (REPO / "breast_cancer_mlp" / "reference.csv").read_text().splitlines()
    write("fuzz_reference_csv", "breast_cancer.csv", bytes([30]) + "\n".join(csv[:40]).encode() + b"\n")
    write("fuzz_reference_csv", "label.csv", bytes([2]) + b"a,b,label\n1,2,0\n3,,1\n5,6e3,1\nnan,-inf,0\n")

    # Drift windows as stored: a partial window's counts, a merged window's columns.
    write("fuzz_drift_window", "counts.json", json.dumps(
        {"reference": "0123456789abcdef", "rows": 40, "counts": [1, 2, 3, 4, 5, 6, 7, 8, 2, 1, 0, 1],
         "sums": [0, 0, -1.5, 12.25]}))
    write("fuzz_drift_window", "columns.json", json.dumps([
        {"name": "x", "kind": "input", "method": "psi", "statistic": 0.31, "threshold": 0.25, "drifted": True,
         "psi": 0.31, "js": 0.2, "ks": 0.3, "ks_p": 0.01, "wasserstein": 0.4, "chi2": 12.5, "chi2_p": 0.02,
         "rows": 40, "missing": 1, "out_of_range": 3},
        {"name": "p:argmax", "kind": "output", "method": "js", "drifted": False, "rows": 40}]))

    # Feedback bodies.
    for name, body in {
        "one.json": {"prediction_id": "0190b5d2-7a3e-7c11-9c5e-2f6a1b3c4d5e", "label": 1},
        "list.json": [{"prediction_id": "a", "reward": 0.5}, {"prediction_id": "b", "label": 2.5},
                      {"prediction_id": "", "label": 1}, 7],
        "items.json": {"items": [{"prediction_id": "c", "label": 0, "reward": 1}]},
    }.items():
        write("fuzz_feedback", name, json.dumps(body))

    # gRPC ModelInferRequest messages, serialised with protobuf's own Python.
    from grpc_tools import protoc
    stubs = tempfile.mkdtemp(prefix="vigil_fuzz_stubs_")
    if protoc.main(["protoc", "-I", str(ROOT / "proto"), f"--python_out={stubs}",
                    str(ROOT / "proto" / "grpc_predict_v2.proto")]) != 0:
        sys.exit("cannot generate Python code from proto/grpc_predict_v2.proto")
    sys.path.insert(0, stubs)
    import grpc_predict_v2_pb2 as pb
    typed = pb.ModelInferRequest(model_name="breast_cancer_mlp", id="r1")
    typed.parameters["priority"].int64_param = 1
    t = typed.inputs.add(name="features", datatype="FP32", shape=[1, 30])
    t.contents.fp32_contents.extend(features(1)[0])
    typed.outputs.add(name="probabilities")
    write("fuzz_grpc_request", "typed.pb", typed.SerializeToString())
    raw = pb.ModelInferRequest(model_name="m", model_version="2")
    raw.inputs.add(name="features", datatype="FP32", shape=[1, 30])
    raw.raw_input_contents.append(values)
    write("fuzz_grpc_request", "raw.pb", raw.SerializeToString())
    mixed = pb.ModelInferRequest(model_name="m")
    for name, dtype, field, data in [("b", "BOOL", "bool_contents", [True, False]),
                                     ("i", "INT16", "int_contents", [-3, 4]),
                                     ("u", "UINT64", "uint64_contents", [1, 2]),
                                     ("s", "BYTES", "bytes_contents", [b"x", b"yz"])]:
        ti = mixed.inputs.add(name=name, datatype=dtype, shape=[2])
        getattr(ti.contents, field).extend(data)
    write("fuzz_grpc_request", "types.pb", mixed.SerializeToString())
    print(f"wrote the seed corpus under {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
