#!/usr/bin/env python3
"""Compatibility test of Vigil's gRPC frontend with an independent client:
Python's grpcio (Debian python3-grpcio), stubs generated at test time from
proto/grpc_predict_v2.proto with grpc_tools.

  grpc_client_test.py PATH/TO/vigil
"""
import json
import os
import pathlib
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIGIL = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "vigil")
REPO = os.path.join(ROOT, "examples", "repository")

STUBS = tempfile.mkdtemp(prefix="vigil_grpc_stubs_")
from grpc_tools import protoc  # noqa: E402

if protoc.main(["protoc", "-I", os.path.join(ROOT, "proto"), f"--python_out={STUBS}", f"--grpc_python_out={STUBS}",
                os.path.join(ROOT, "proto", "grpc_predict_v2.proto")]) != 0:
    raise SystemExit("cannot generate Python stubs from proto/grpc_predict_v2.proto")
sys.path.insert(0, STUBS)
import grpc  # noqa: E402
import grpc_predict_v2_pb2 as pb  # noqa: E402
import grpc_predict_v2_pb2_grpc as pbg  # noqa: E402


class Server:
    """`vigil serve` on free HTTP and gRPC ports."""

    def __init__(self, repo, extra=()):
        self.log = tempfile.NamedTemporaryFile(prefix="vigil_grpc_", suffix=".log", delete=False)
        self.data = tempfile.mkdtemp(prefix="vigil_grpc_data_")
        self.proc = subprocess.Popen([VIGIL, "serve", "--model-repository", repo, "--http-port", "0", "--grpc-port", "0",
                                      "--host", "127.0.0.1", "--data-dir", self.data, *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            text = pathlib.Path(self.log.name).read_text()
            if "event=server_ready" in text:
                self.http = int(re.search(r"protocol=http host=\S+ port=(\d+)", text).group(1))
                self.grpc = int(re.search(r"protocol=grpc host=\S+ port=(\d+)", text).group(1))
                return
            if self.proc.poll() is not None:
                raise RuntimeError("vigil exited:\n" + text)
            time.sleep(0.05)
        raise RuntimeError("vigil did not become ready")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log.close()
        os.unlink(self.log.name)
        shutil.rmtree(self.data, ignore_errors=True)
        return code


def features_request(model, rows, version="", raw=False):
    req = pb.ModelInferRequest(model_name=model, model_version=version, id="grpc-test")
    t = req.inputs.add()
    t.name, t.datatype = "features", "FP32"
    t.shape.extend([len(rows), 30])
    flat = [x for r in rows for x in r]
    if raw:
        req.raw_input_contents.append(struct.pack(f"<{len(flat)}f", *flat))
    else:
        t.contents.fp32_contents.extend(flat)
    return req


class GrpcCompatibility(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(REPO)
        cls.channel = grpc.insecure_channel(f"127.0.0.1:{cls.server.grpc}")
        cls.stub = pbg.GRPCInferenceServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        assert cls.server.stop() == 0

    def test_health_and_metadata(self):
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest()).live)
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest()).ready)
        self.assertTrue(self.stub.ModelReady(pb.ModelReadyRequest(name="breast_cancer_mlp", version="2")).ready)
        self.assertFalse(self.stub.ModelReady(pb.ModelReadyRequest(name="breast_cancer_mlp", version="9")).ready)
        with self.assertRaises(grpc.RpcError) as e:
            self.stub.ModelReady(pb.ModelReadyRequest(name="nope"))
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        meta = self.stub.ServerMetadata(pb.ServerMetadataRequest())
        self.assertEqual(meta.name, "vigil")
        self.assertIn("binary_tensor_data", meta.extensions)
        cfg = self.stub.ModelConfig(pb.ModelConfigRequest(name="breast_cancer_mlp")).config
        self.assertEqual((cfg.name, cfg.backend, cfg.platform, cfg.max_batch_size),
                         ("breast_cancer_mlp", "torchscript", "pytorch_torchscript", 64))
        self.assertEqual((cfg.input[0].name, cfg.input[0].data_type, list(cfg.input[0].dims)),
                         ("features", pb.TYPE_FP32, [30]))
        self.assertEqual(list(cfg.dynamic_batching.preferred_batch_size), [16, 64])
        self.assertEqual(cfg.version_policy.latest.num_versions, 2)
        self.assertEqual(cfg.instance_group[0].count, 1)
        m = self.stub.ModelMetadata(pb.ModelMetadataRequest(name="breast_cancer_mlp"))
        self.assertEqual(list(m.versions), ["1", "2"])
        self.assertEqual(m.platform, "pytorch_torchscript")
        self.assertEqual(list(m.inputs[0].shape), [-1, 30])
        self.assertEqual([o.name for o in m.outputs], ["probabilities", "logits"])

    def test_typed_and_raw_contents_reproduce_expected_outputs(self):
        for model, version in (("breast_cancer_mlp", "1"), ("breast_cancer_mlp_onnx", "1"), ("breast_cancer_xgb", "2")):
            expected = json.loads(pathlib.Path(REPO, model, version, "expected.json").read_text())
            rows = expected["inputs"]["features"]
            for raw in (False, True):
                r = self.stub.ModelInfer(features_request(model, rows, version, raw))
                self.assertEqual((r.model_name, r.model_version, r.id), (model, version, "grpc-test"))
                self.assertEqual(len(r.raw_output_contents), len(r.outputs) if raw else 0)
                for i, out in enumerate(r.outputs):
                    self.assertEqual(list(out.shape), [len(rows), 2])
                    if raw:
                        got = struct.unpack(f"<{len(rows) * 2}f", r.raw_output_contents[i])
                    else:
                        got = list(out.contents.fp32_contents)
                    want = [x for row in expected["outputs"][out.name] for x in row]
                    for g, w in zip(got, want):
                        self.assertAlmostEqual(g, w, delta=1e-5, msg=f"{model} v{version} raw={raw} {out.name}")

    def test_errors_map_to_grpc_codes(self):
        rows = [[1.0] * 30]
        cases = []
        mixed = features_request("breast_cancer_xgb", rows, raw=True)
        mixed.inputs[0].contents.fp32_contents.extend([1.0] * 30)
        cases.append((mixed, grpc.StatusCode.INVALID_ARGUMENT, "one or the other"))
        cases.append((features_request("nope", rows), grpc.StatusCode.NOT_FOUND, "unknown model"))
        # The target is resolved first: an unknown model is NOT_FOUND whatever the request holds.
        cases.append((pb.ModelInferRequest(model_name="nope"), grpc.StatusCode.NOT_FOUND, "unknown model"))
        unknown_mixed = features_request("nope", rows, raw=True)
        unknown_mixed.inputs[0].contents.fp32_contents.extend([1.0] * 30)
        cases.append((unknown_mixed, grpc.StatusCode.NOT_FOUND, "unknown model"))
        cases.append((features_request("breast_cancer_xgb", rows, version="7"), grpc.StatusCode.NOT_FOUND, "version 7"))
        short = features_request("breast_cancer_xgb", rows)
        del short.inputs[0].contents.fp32_contents[5:]
        cases.append((short, grpc.StatusCode.INVALID_ARGUMENT, "needs 30 elements"))
        big = features_request("breast_cancer_mlp", [[1.0] * 30] * 65)
        cases.append((big, grpc.StatusCode.INVALID_ARGUMENT, "max_batch_size"))
        for req, code, fragment in cases:
            with self.assertRaises(grpc.RpcError) as e:
                self.stub.ModelInfer(req)
            self.assertEqual(e.exception.code(), code, e.exception.details())
            self.assertIn(fragment, e.exception.details())


class GrpcRepositoryAndStatistics(unittest.TestCase):
    def test_index_load_unload_and_statistics(self):
        repo = tempfile.mkdtemp(prefix="vigil_grpc_repo_")
        shutil.copytree(os.path.join(REPO, "breast_cancer_xgb"), os.path.join(repo, "breast_cancer_xgb"))
        server = Server(repo)
        try:
            stub = pbg.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc}"))
            index = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
            self.assertEqual(sorted((m.name, m.version, m.state) for m in index.models),
                             [("breast_cancer_xgb", "1", "READY"), ("breast_cancer_xgb", "2", "READY")])
            stub.ModelInfer(features_request("breast_cancer_xgb", [[1.0] * 30] * 3, version="2"))
            stats = stub.ModelStatistics(pb.ModelStatisticsRequest(name="breast_cancer_xgb", version="2"))
            self.assertEqual(len(stats.model_stats), 1)
            s = stats.model_stats[0]
            self.assertEqual((s.name, s.version, s.inference_count), ("breast_cancer_xgb", "2", 3))
            self.assertEqual(s.inference_stats.success.count, 1)
            self.assertGreater(s.inference_stats.compute_infer.ns, 0)
            self.assertEqual([(b.batch_size, b.compute_infer.count) for b in s.batch_stats], [(3, 1)])
            self.assertEqual(len(stub.ModelStatistics(pb.ModelStatisticsRequest()).model_stats), 2)
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="breast_cancer_xgb"))
            self.assertFalse(stub.ModelReady(pb.ModelReadyRequest(name="breast_cancer_xgb")).ready)
            with self.assertRaises(grpc.RpcError) as e:
                stub.ModelInfer(features_request("breast_cancer_xgb", [[1.0] * 30]))
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)
            stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="breast_cancer_xgb"))
            self.assertTrue(stub.ModelReady(pb.ModelReadyRequest(name="breast_cancer_xgb")).ready)
            with self.assertRaises(grpc.RpcError) as e:
                stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="nope"))
            self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        finally:
            self.assertEqual(server.stop(), 0)
            shutil.rmtree(repo)


class GrpcDeadline(unittest.TestCase):
    def test_deadline_passing_in_the_queue_is_never_executed(self):
        repo = tempfile.mkdtemp(prefix="vigil_grpc_repo_")
        shutil.copytree(os.path.join(REPO, "breast_cancer_xgb"), os.path.join(repo, "breast_cancer_xgb"))
        config = os.path.join(repo, "breast_cancer_xgb", "config.yaml")
        text = pathlib.Path(config).read_text().replace("max_queue_delay_us: 100", "max_queue_delay_us: 500000")
        pathlib.Path(config).write_text(text)
        server = Server(repo)
        try:
            stub = pbg.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc}"))
            stats_url = f"http://127.0.0.1:{server.http}/v2/models/breast_cancer_xgb/versions/1/stats"
            with urllib.request.urlopen(stats_url) as f:
                before = json.load(f)["model_stats"][0]["execution_count"]
            with self.assertRaises(grpc.RpcError) as e:
                stub.ModelInfer(features_request("breast_cancer_xgb", [[1.0] * 30], version="1"), timeout=0.1)
            self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
            time.sleep(0.6)  # past the batching window: the request must not have run
            with urllib.request.urlopen(stats_url) as f:
                after = json.load(f)["model_stats"][0]
            self.assertEqual(after["execution_count"], before)
            self.assertEqual(after["inference_stats"]["fail"]["count"], 1)
        finally:
            self.assertEqual(server.stop(), 0)
            shutil.rmtree(repo)

    def cancel_frees_the_queue_slot(self, name, version, deployment=None):
        """A call queued in a 5 s batching window, cancelled: its slot in a queue
        of one is free at once (long before the window ends) and it never runs."""
        repo = tempfile.mkdtemp(prefix="vigil_grpc_repo_")
        shutil.copytree(os.path.join(REPO, "breast_cancer_xgb"), os.path.join(repo, "breast_cancer_xgb"))
        config = os.path.join(repo, "breast_cancer_xgb", "config.yaml")
        text = pathlib.Path(config).read_text().replace("max_queue_delay_us: 100", "max_queue_delay_us: 5000000")
        pathlib.Path(config).write_text(text.replace("max_queue_size: 4096", "max_queue_size: 1"))
        if deployment:
            os.makedirs(os.path.join(repo, "deployments"))
            pathlib.Path(os.path.join(repo, "deployments", name + ".yaml")).write_text(deployment)
        server = Server(repo)
        stats_url = f"http://127.0.0.1:{server.http}/v2/models/breast_cancer_xgb/versions/1/stats"
        metrics_url = f"http://127.0.0.1:{server.http}/metrics"

        def stats():
            with urllib.request.urlopen(stats_url) as f:
                return json.load(f)["model_stats"][0]

        def queued():
            with urllib.request.urlopen(metrics_url) as f:
                m = re.search(r'vigil_inference_queue_depth\{model="breast_cancer_xgb",version="1"\} (\S+)', f.read().decode())
            return float(m.group(1)) if m else 0

        def wait_for(condition, what, timeout=3.0):
            deadline = time.time() + timeout
            while not condition():
                self.assertLess(time.time(), deadline, what)
                time.sleep(0.01)

        try:
            stub = pbg.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc}"))
            start = time.time()
            future = stub.ModelInfer.future(features_request(name, [[1.0] * 30], version=version))
            wait_for(lambda: queued() == 1 or future.done(), "the first call is queued")
            self.assertFalse(future.done(), future.exception() if future.done() else "")
            future.cancel()
            # Freed at once, not when the 5 s window would have closed.
            wait_for(lambda: stats()["inference_stats"]["fail"]["count"] == 1, "the cancelled call is dropped")
            self.assertLess(time.time() - start, 4.0)
            # The slot is free again: a second call is queued, not refused as "queue full".
            second = stub.ModelInfer.future(features_request(name, [[1.0] * 30], version=version))
            wait_for(lambda: queued() == 1, "the second call is queued")
            self.assertFalse(second.done())
            second.cancel()
            wait_for(lambda: stats()["inference_stats"]["fail"]["count"] == 2, "the second call is dropped")
            self.assertEqual(stats()["execution_count"], 0)  # neither ran
        finally:
            self.assertEqual(server.stop(), 0)
            shutil.rmtree(repo)

    def test_cancelled_call_is_dropped_from_the_queue(self):
        self.cancel_frees_the_queue_slot("breast_cancer_xgb", "1")

    def test_cancelled_endpoint_call_frees_its_queue_slot(self):
        # The call names the endpoint, not the model: cancellation must still reach the model's queue.
        self.cancel_frees_the_queue_slot("fraud", "", "production: {model: breast_cancer_xgb, version: 1}\n")


class GrpcOverTls(unittest.TestCase):
    """gRPC over TLS and mutual TLS with certificates made here (tests/tls/make_certs.sh)."""

    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="vigil_grpc_certs_")
        subprocess.run([os.path.join(ROOT, "tests", "tls", "make_certs.sh"), cls.certs], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certs, ignore_errors=True)

    def read(self, name):
        return pathlib.Path(self.certs, name).read_bytes()

    def tls_args(self, *extra):
        return ["--tls-cert", os.path.join(self.certs, "server.pem"), "--tls-key", os.path.join(self.certs, "server.key"),
                *extra]

    def test_tls_channel_infers_and_plain_text_is_refused(self):
        server = Server(REPO, self.tls_args())
        try:
            creds = grpc.ssl_channel_credentials(root_certificates=self.read("ca.pem"))
            with grpc.secure_channel(f"localhost:{server.grpc}", creds) as channel:
                stub = pbg.GRPCInferenceServiceStub(channel)
                self.assertTrue(stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live)
                resp = stub.ModelInfer(features_request("breast_cancer_mlp", [[1.0] * 30], raw=True), timeout=10)
                self.assertEqual(list(resp.outputs[0].shape), [1, 2])
            with grpc.insecure_channel(f"127.0.0.1:{server.grpc}") as channel:
                with self.assertRaises(grpc.RpcError) as e:
                    pbg.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=3)
                self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)
        finally:
            self.assertEqual(server.stop(), 0)

    def test_mutual_tls_needs_a_client_certificate(self):
        server = Server(REPO, self.tls_args("--tls-client-ca", os.path.join(self.certs, "ca.pem")))
        try:
            anonymous = grpc.ssl_channel_credentials(root_certificates=self.read("ca.pem"))
            with grpc.secure_channel(f"localhost:{server.grpc}", anonymous) as channel:
                with self.assertRaises(grpc.RpcError):
                    pbg.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=3)
            client = grpc.ssl_channel_credentials(root_certificates=self.read("ca.pem"),
                                                  private_key=self.read("client.key"),
                                                  certificate_chain=self.read("client.pem"))
            with grpc.secure_channel(f"localhost:{server.grpc}", client) as channel:
                self.assertTrue(pbg.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=10).live)
        finally:
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    try:
        unittest.main(verbosity=2)
    finally:
        shutil.rmtree(STUBS, ignore_errors=True)
