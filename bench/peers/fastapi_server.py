"""Peer for bench/run.sh: the breast-cancer TorchScript MLP behind FastAPI +
uvicorn + PyTorch, answering the same Open Inference Protocol JSON as Vigil.

  MODEL=path/to/model.pt python3 -m uvicorn fastapi_server:app --workers 2 --port N
"""
import os

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

torch.set_num_threads(1)
model = torch.jit.load(os.environ["MODEL"])
model.eval()
app = FastAPI()


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    body = await request.json()
    tensor = body["inputs"][0]
    x = torch.tensor(tensor["data"], dtype=torch.float32).reshape(tensor["shape"])
    with torch.inference_mode():
        out = model(x)
    if isinstance(out, tuple):
        out = out[0]
    return JSONResponse({"model_name": name, "model_version": "1",
                         "outputs": [{"name": "probabilities", "datatype": "FP32",
                                      "shape": list(out.shape), "data": out.flatten().tolist()}]})
