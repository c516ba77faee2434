// The TypeScript client against a live llmserve (started by tests/clients/test_typescript_client.py,
// which passes its address and keys in LLMSERVE_TARGET, LLMSERVE_API_KEY and LLMSERVE_ADMIN_KEY).
"use strict";
const assert = require("node:assert/strict");
const { randomUUID } = require("node:crypto");
const net = require("node:net");
const { after, test } = require("node:test");

const { Client, Code, LlmserveError, NO_RETRY, admin, common, lut } = require("../dist/index.js");

const target = process.env.LLMSERVE_TARGET;
const apiKey = process.env.LLMSERVE_API_KEY;
assert.ok(target && apiKey, "run through pytest: LLMSERVE_TARGET and LLMSERVE_API_KEY are not set");
const client = new Client(target, { apiKey });
after(() => client.close());

const ENDED = [common.FinishReason.FINISH_REASON_LENGTH, common.FinishReason.FINISH_REASON_EOS];
const SMALL_SCHEMA = {
  type: "object",
  properties: { ok: { type: "boolean" }, n: { type: "integer", minimum: 0, maximum: 99 } },
  required: ["ok", "n"],
  additionalProperties: false,
};

test("unary complete, chat and models", async () => {
  const reply = await client.complete("Hello", { maxNewTokens: 3, doSample: false });
  assert.equal(reply.model, "tiny");
  assert.equal(reply.usage.completionTokens, 3);
  const chat = await client.chat([["user", "Hi"]], { maxNewTokens: 2, doSample: false });
  assert.equal(chat.message.role, "assistant");
  assert.ok((await client.models()).some((m) => m.name === "tiny"));
  assert.equal((await client.health()).status, "ok");
});

test("a server stream yields text pieces, then the final usage", async () => {
  const stream = client.streamComplete("Once upon a time", { maxNewTokens: 12, doSample: false });
  const pieces = [];
  for await (const piece of stream) pieces.push(piece);
  assert.ok(pieces.length >= 2 && pieces.every((p) => typeof p === "string"));
  assert.equal(pieces.join(""), stream.final.text);
  assert.ok(ENDED.includes(stream.finishReason));
  assert.ok(stream.usage.completionTokens > 0 && stream.usage.completionTokens <= 12);
});

test("aborting a stream ends it before its final event", async () => {
  const controller = new AbortController();
  const stream = client.streamComplete("Once upon a time", { maxNewTokens: 400, doSample: false,
                                                            signal: controller.signal });
  const pieces = [];
  for await (const piece of stream) {
    pieces.push(piece);
    controller.abort();
  }
  assert.equal(pieces.length, 1);
  assert.equal(stream.final, undefined);
});

test("an aborted unary call rejects with CANCELLED", async () => {
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(client.complete("Hello", { signal: controller.signal }),
                       (error) => error instanceof LlmserveError && error.code === Code.CANCELLED);
});

test("an error status carries its google.rpc details", async () => {
  await assert.rejects(client.complete("Hello", { maxNewTokens: 0 }), (error) => {
    assert.ok(error instanceof LlmserveError);
    assert.equal(error.code, Code.INVALID_ARGUMENT);
    assert.equal(error.codeName, "INVALID_ARGUMENT");
    assert.ok("max_new_tokens" in error.fieldViolations, JSON.stringify(error.details));
    return true;
  });
  await assert.rejects(client.lut.get("no-such-lut"), (error) => {
    assert.equal(error.code, Code.NOT_FOUND);
    assert.equal(error.detail("google.rpc.ResourceInfo").resourceName, "tiny/no-such-lut");
    return true;
  });
  const stream = client.streamComplete("Hello", { temperature: 5 });
  await assert.rejects((async () => { for await (const _ of stream); })(),
                       (error) => error.code === Code.INVALID_ARGUMENT && "temperature" in error.fieldViolations);
});

test("calls without a key are refused as UNAUTHENTICATED", async () => {
  const anonymous = new Client(target);
  try {
    await assert.rejects(anonymous.lut.list(), (error) => error.code === Code.UNAUTHENTICATED);
  } finally {
    anonymous.close();
  }
});

test("UNAVAILABLE is retried with backoff, within the policy's attempts", async () => {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));  // a port nobody listens on
  const waits = [];
  const nowhere = new Client(`127.0.0.1:${port}`, {
    retry: { maxAttempts: 3, initialBackoffMs: 20, onRetry: (error, ms) => waits.push([error.code, ms]) },
  });
  try {
    await assert.rejects(nowhere.complete("Hello"), (error) => error.code === Code.UNAVAILABLE);
    assert.equal(waits.length, 2);
    assert.ok(waits.every(([code, ms]) => code === Code.UNAVAILABLE && ms > 0));
    const once = new Client(`127.0.0.1:${port}`, { retry: NO_RETRY });
    await assert.rejects(once.health(), (error) => error.code === Code.UNAVAILABLE);
    once.close();
  } finally {
    nowhere.close();
  }
});

test("a LUT taught a fact, then used", async () => {
  const trained = await client.lut.train("u1", "TLG Capital is an asset management firm.",
                                         { labelContext: "Assistant: " });
  assert.equal(trained.lutName, "u1");
  const reply = await client.lut.generate("User: What is TLG Capital?\nAssistant:", { lutName: "u1", maxNewTokens: 4 });
  assert.equal(reply.lutName, "u1");
  assert.ok(reply.fullText.startsWith(reply.prompt));
});

test("a LUT export past grpc-js's default 4 MiB arrives whole", async () => {
  const name = process.env.LLMSERVE_BIG_LUT;
  const bytes = Number(process.env.LLMSERVE_BIG_LUT_BYTES);
  assert.ok(name && bytes > 4 * 1024 * 1024, "pytest imports a large LUT first");
  const reply = await client.call(client.stubs.lut, client.stubs.lut.exportLut,
                                  lut.ExportLutRequest.fromPartial({ lutName: name, model: "tiny" }));
  assert.equal(reply.data.length, bytes);
  assert.equal(reply.entryCount, 160);
});

test("a chat session with a JSON-schema reply", async () => {
  const started = await client.chatSessions.start(randomUUID(), "Hi", { maxNewTokens: 1 });
  const reply = await client.chatSessions.send(started.sessionId, "Give me JSON.",
                                               { jsonSchema: SMALL_SCHEMA, maxNewTokens: 200, seed: 1 });
  assert.deepEqual(Object.keys(JSON.parse(reply.responseMessage)).sort(), ["n", "ok"]);
  assert.deepEqual(Object.keys(reply.responseJson).sort(), ["n", "ok"]);
  const stream = client.chatSessions.stream(started.sessionId, "More?", { maxNewTokens: 3, seed: 2 });
  const text = await stream.text();
  assert.equal(stream.reply.updatedSession, started.sessionId);
  const history = await client.chatSessions.history(started.sessionId);
  assert.equal(history.messages.at(-1).content, text);
});

test("an SAE job watched to its end", async () => {
  const corpus = Buffer.from("The river runs past the mill and the miller grinds the grain.\n".repeat(30));
  assert.equal((await client.sae.uploadCorpus("mill.txt", corpus)).sizeBytes, corpus.length);
  const job = await client.sae.start("tiny", "mill.txt", { layerNumber: 1, hiddenDim: 128, k: 8, maxEpochs: 2,
                                                          maxSequenceLength: 64, learningRate: 1e-3, minLoss: 0 });
  const watch = client.sae.watch(job.jobId, { minIntervalSeconds: 0.1 });
  const events = [];
  for await (const event of watch) events.push(event);
  assert.equal(events.at(-1), watch.final);
  assert.equal(watch.final.state, common.JobState.JOB_STATE_COMPLETED, watch.final.message);
  assert.equal((await client.sae.result(job.jobId)).featureCount, 128);
});

test("the typed stubs are there for the rest, with the client's key", async () => {
  const adminKey = process.env.LLMSERVE_ADMIN_KEY;
  const root = new Client(target, { apiKey: adminKey });
  try {
    const reply = await root.call(root.stubs.admin, root.stubs.admin.listApiKeys,
                                  admin.ListApiKeysRequest.fromPartial({}));
    assert.ok(Array.isArray(reply.apiKeys));
  } finally {
    root.close();
  }
});
