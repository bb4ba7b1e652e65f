#!/usr/bin/env python3
"""Trains Vigil's example models on the breast-cancer data set that Debian's
python3-sklearn ships (no downloads) and writes a model repository:

  repository/breast_cancer_mlp/       TorchScript MLP, versions 1 and 2
  repository/breast_cancer_mlp_onnx/  the version-1 MLP exported to ONNX
  repository/breast_cancer_xgb/       XGBoost classifier, v1 UBJ, v2 JSON

Beside each model: config.yaml, reference.csv (a training-time sample with a
label column) and, per version, expected.json holding a few input rows and the
outputs the Python runtime produced for them. Tests check that every C++
backend reproduces those outputs to 1e-5.

Run with Debian's interpreter: /usr/bin/python3 examples/train.py [OUT_DIR]
"""
import csv
import json
import os
import sys

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

torch.set_num_threads(1)

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "repository")
EXPECTED_ROWS = 8


def feature_names(data):
    return [n.replace(" ", "_") for n in data.feature_names]


class Mlp(torch.nn.Module):
    """Standardisation baked in, so clients send raw features."""

    def __init__(self, mean, std, hidden):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.net = torch.nn.Sequential(
            torch.nn.Linear(30, hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, 2))

    def forward(self, x):
        logits = self.net((x - self.mean) / self.std)
        return torch.softmax(logits, dim=1), logits


def train_mlp(x, y, hidden, seed, epochs):
    torch.manual_seed(seed)
    model = Mlp(x.mean(axis=0), x.std(axis=0) + 1e-6, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.long)
    for _ in range(epochs):
        opt.zero_grad()
        probs, _ = model(xt)
        loss = torch.nn.functional.nll_loss(torch.log(probs + 1e-9), yt)
        loss.backward()
        opt.step()
    model.eval()
    return model


def write_config(model_dir, text):
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.yaml"), "w") as f:
        f.write(text)


def write_reference(model_dir, names, x, y, rng):
    idx = rng.choice(len(x), size=min(200, len(x)), replace=False)
    with open(os.path.join(model_dir, "reference.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names + ["label"])
        for i in idx:
            # Shortest text that reads back as the same float32 (14.81, not 14.8100004196167).
            w.writerow([str(np.float32(v)) for v in x[i]] + [int(y[i])])


def write_expected(version_dir, rows, outputs):
    """outputs: {name: array}, in the config's output order."""
    with open(os.path.join(version_dir, "expected.json"), "w") as f:
        json.dump({"inputs": {"features": rows.astype(np.float32).tolist()},
                   "outputs": {k: v.astype(np.float32).tolist() for k, v in outputs.items()}}, f, indent=1)


MLP_CONFIG = """\
# TorchScript MLP on the 30 breast-cancer features (standardisation inside).
# Outputs: class probabilities [P(malignant=0), P(benign=1)] and the raw logits.
backend: torchscript
max_batch_size: 64
inputs:
  - name: features
    datatype: FP32
    shape: [30]
outputs:
  - name: probabilities
    datatype: FP32
    shape: [2]
  - name: logits
    datatype: FP32
    shape: [2]
dynamic_batching:
  max_queue_delay_us: 200
  preferred_batch_sizes: [16, 64]
  max_queue_size: 4096
  default_timeout_us: 0
instances: 1
version_policy:
  latest: 2
warmup:
  batch_size: 4
"""

ONNX_CONFIG = """\
# The version-1 MLP exported to ONNX, run by OpenCV DNN.
backend: onnx
max_batch_size: 64
inputs:
  - name: features
    datatype: FP32
    shape: [30]
outputs:
  - name: probabilities
    datatype: FP32
    shape: [2]
  - name: logits
    datatype: FP32
    shape: [2]
dynamic_batching:
  max_queue_delay_us: 100
  max_queue_size: 4096
instances: 1
warmup: true
"""

XGB_CONFIG = """\
# Gradient-boosted trees; the output is [P(malignant), P(benign)] per row
# (scikit-learn's target: 0 = malignant, 1 = benign).
backend: xgboost
max_batch_size: 256
inputs:
  - name: features
    datatype: FP32
    shape: [30]
outputs:
  - name: probabilities
    datatype: FP32
    shape: [2]
dynamic_batching:
  max_queue_delay_us: 100
  max_queue_size: 4096
instances: 1
version_policy: all
"""


def main():
    data = load_breast_cancer()
    names = feature_names(data)
    x = data.data.astype(np.float32)
    y = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=7, stratify=y)
    rng = np.random.default_rng(11)
    rows = x_test[:EXPECTED_ROWS]

    # TorchScript MLP, two versions of different width.
    mlp_dir = os.path.join(OUT, "breast_cancer_mlp")
    write_config(mlp_dir, MLP_CONFIG)
    write_reference(mlp_dir, names, x_train, y_train, rng)
    mlps = {}
    for version, hidden, seed in ((1, 16, 1), (2, 32, 2)):
        model = train_mlp(x_train, y_train, hidden, seed, epochs=300)
        mlps[version] = model
        vdir = os.path.join(mlp_dir, str(version))
        os.makedirs(vdir, exist_ok=True)
        traced = torch.jit.trace(model, torch.tensor(rows))
        traced.save(os.path.join(vdir, "model.pt"))
        with torch.no_grad():
            probs, logits = traced(torch.tensor(rows))
            acc = (model(torch.tensor(x_test))[0].argmax(1).numpy() == y_test).mean()
        write_expected(vdir, rows, {"probabilities": probs.numpy(), "logits": logits.numpy()})
        print(f"breast_cancer_mlp v{version}: hidden={hidden} test accuracy={acc:.3f}")

    # ONNX export of the version-1 MLP.
    onnx_dir = os.path.join(OUT, "breast_cancer_mlp_onnx")
    write_config(onnx_dir, ONNX_CONFIG)
    write_reference(onnx_dir, names, x_train, y_train, rng)
    vdir = os.path.join(onnx_dir, "1")
    os.makedirs(vdir, exist_ok=True)
    torch.onnx.export(mlps[1], torch.tensor(rows), os.path.join(vdir, "model.onnx"),
                      input_names=["features"], output_names=["probabilities", "logits"],
                      dynamic_axes={"features": {0: "batch"}, "probabilities": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=11)
    with torch.no_grad():
        probs, logits = mlps[1](torch.tensor(rows))
        write_expected(vdir, rows, {"probabilities": probs.numpy(), "logits": logits.numpy()})
    print("breast_cancer_mlp_onnx v1: exported")

    # XGBoost classifier: v1 binary UBJ, v2 JSON with more trees.
    import xgboost as xgb
    xgb_dir = os.path.join(OUT, "breast_cancer_xgb")
    write_config(xgb_dir, XGB_CONFIG)
    write_reference(xgb_dir, names, x_train, y_train, rng)
    for version, trees, ext in ((1, 40, "ubj"), (2, 80, "json")):
        clf = xgb.XGBClassifier(n_estimators=trees, max_depth=4, learning_rate=0.2,
                                n_jobs=1, random_state=version)
        clf.fit(x_train, y_train)
        vdir = os.path.join(xgb_dir, str(version))
        os.makedirs(vdir, exist_ok=True)
        clf.save_model(os.path.join(vdir, f"model.{ext}"))
        write_expected(vdir, rows, {"probabilities": clf.predict_proba(rows)})
        print(f"breast_cancer_xgb v{version}: trees={trees} test accuracy={clf.score(x_test, y_test):.3f}")


if __name__ == "__main__":
    main()
