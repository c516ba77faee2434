// A streamed completion: print the pieces as they come, then the usage.
//   LLMSERVE_TARGET=127.0.0.1:50051 node examples/stream_completion.mjs "Once upon a time"
import { Client } from "@llmserve/client";

const client = new Client(process.env.LLMSERVE_TARGET ?? "127.0.0.1:50051", { apiKey: process.env.LLMSERVE_API_KEY });
const stream = client.streamComplete(process.argv[2] ?? "Once upon a time", { maxNewTokens: 40 });
for await (const piece of stream) process.stdout.write(piece);
console.log(`\n[${stream.usage.completionTokens} tokens]`);
client.close();
