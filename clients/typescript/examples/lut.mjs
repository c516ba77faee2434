// Teach a per-user lookup table a fact, then generate with it.
//   LLMSERVE_TARGET=127.0.0.1:50051 node examples/lut.mjs
import { Client } from "@llmserve/client";

const client = new Client(process.env.LLMSERVE_TARGET ?? "127.0.0.1:50051", { apiKey: process.env.LLMSERVE_API_KEY });
await client.lut.train("user_123", "TLG Capital is an asset management firm.", { labelContext: "Assistant: " });
const reply = await client.lut.generate("User: What is TLG Capital?\nAssistant:", { lutName: "user_123", maxNewTokens: 20 });
console.log(reply.completion);
client.close();
