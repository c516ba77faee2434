// A chat session whose reply follows a JSON schema.
//   LLMSERVE_TARGET=127.0.0.1:50051 node examples/chat_json.mjs
import { randomUUID } from "node:crypto";

import { Client } from "@llmserve/client";

const schema = {
  type: "object",
  properties: { city: { type: "string", maxLength: 40 }, population_millions: { type: "number" } },
  required: ["city", "population_millions"],
  additionalProperties: false,
};
const client = new Client(process.env.LLMSERVE_TARGET ?? "127.0.0.1:50051", { apiKey: process.env.LLMSERVE_API_KEY });
const session = await client.chatSessions.start(randomUUID(), "Hello!", { maxNewTokens: 30 });
console.log("assistant:", session.message);
const reply = await client.chatSessions.send(session.sessionId, "Name a large city and its population as JSON.",
                                             { jsonSchema: schema, maxNewTokens: 80 });
console.log(JSON.stringify(JSON.parse(reply.responseMessage), null, 2));
await client.chatSessions.end(session.sessionId);
client.close();
