// Train a sparse autoencoder on a small corpus and watch the job to its end.
//   LLMSERVE_TARGET=127.0.0.1:50051 LLMSERVE_MODEL=smollm2 node examples/sae_job.mjs
import { Client, common } from "@llmserve/client";

const corpus = Buffer.from("The river runs past the mill and the miller grinds the grain every morning.\n".repeat(50));
const client = new Client(process.env.LLMSERVE_TARGET ?? "127.0.0.1:50051", { apiKey: process.env.LLMSERVE_API_KEY });
await client.sae.uploadCorpus("mill.txt", corpus);
const job = await client.sae.start(process.env.LLMSERVE_MODEL ?? "smollm2", "mill.txt",
                                   { layerNumber: 1, expansionFactor: 2, maxEpochs: 2, maxSequenceLength: 64 });
for await (const event of client.sae.watch(job.jobId, { minIntervalSeconds: 0.5 })) {
  console.log(`${common.jobStateToJSON(event.state)} ${Math.round(event.progress * 100)}% loss ${event.loss.toFixed(4)}`);
}
const result = await client.sae.result(job.jobId);
console.log(`${result.featureCount} features, FVU ${result.metrics.fvu.toFixed(3)}, weights in ${result.artifacts.weightsPath}`);
client.close();
