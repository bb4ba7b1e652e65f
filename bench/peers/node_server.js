// Peer for bench/run.sh: the breast-cancer ONNX MLP behind Node.js http +
// onnxruntime-node, one worker process per core (cluster), answering the same
// Open Inference Protocol JSON as Vigil.
//
//   MODEL=path/to/model.onnx PORT=N node node_server.js
const cluster = require('cluster');
const http = require('http');
const os = require('os');

if (cluster.isPrimary) {
  const workers = Number(process.env.WORKERS || os.cpus().length);
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  const ort = require('onnxruntime-node');
  ort.InferenceSession.create(process.env.MODEL, {intraOpNumThreads: 1, interOpNumThreads: 1}).then((session) => {
    http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', async () => {
        try {
          const body = JSON.parse(Buffer.concat(chunks));
          const input = body.inputs[0];
          const data = Float32Array.from(input.data.flat(Infinity));
          const result = await session.run({[input.name]: new ort.Tensor('float32', data, input.shape)});
          const out = result.probabilities;
          res.writeHead(200, {'Content-Type': 'application/json'});
          res.end(JSON.stringify({model_name: 'breast_cancer_mlp_onnx', model_version: '1',
            outputs: [{name: 'probabilities', datatype: 'FP32', shape: out.dims, data: Array.from(out.data)}]}));
        } catch (e) {
          res.writeHead(400, {'Content-Type': 'application/json'});
          res.end(JSON.stringify({error: String(e)}));
        }
      });
    }).listen(Number(process.env.PORT), '127.0.0.1');
  });
}
