import assert from "node:assert/strict";
import { decodeWatchStream, WatchDecodeError } from "../../lib/kube/watch.ts";
import type { WatchEvent } from "../../lib/kube/api.ts";

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      c.close();
    },
  });
}

async function collect(s: ReadableStream<Uint8Array>): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  for await (const ev of decodeWatchStream(s)) out.push(ev);
  return out;
}

const added = JSON.stringify({ type: "ADDED", object: { metadata: { name: "a" } } });
const bookmark = JSON.stringify({
  type: "BOOKMARK",
  object: { metadata: { resourceVersion: "7" } },
});

Deno.test("watch decoder: frames split across chunks and several frames per chunk", async () => {
  const whole = `${added}\n${bookmark}\n${added}\n`;
  const chunks = [whole.slice(0, 5), whole.slice(5, 70), whole.slice(70)];
  const events = await collect(streamOf(chunks));
  assert.deepEqual(events.map((e) => e.type), ["ADDED", "BOOKMARK", "ADDED"]);
  assert.deepEqual(events[1].object.metadata?.resourceVersion, "7");
});

Deno.test("watch decoder: multi-byte characters split between chunks survive", async () => {
  const frame = JSON.stringify({ type: "ADDED", object: { metadata: { name: "zoné-✓" } } }) + "\n";
  const bytes = new TextEncoder().encode(frame);
  const cut = bytes.indexOf(0xe2) + 1; // inside the 3-byte check mark
  const s = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(bytes.slice(0, cut));
      c.enqueue(bytes.slice(cut));
      c.close();
    },
  });
  const [ev] = await collect(s);
  assert.deepEqual(ev.object.metadata?.name, "zoné-✓");
});

Deno.test("watch decoder: a last frame without newline is delivered", async () => {
  assert.deepEqual((await collect(streamOf([`${added}\n${bookmark}`]))).length, 2);
});

Deno.test("watch decoder: a frame that is not an event fails the stream", async () => {
  await assert.rejects(() => collect(streamOf([`${added}\nnot json\n`])), WatchDecodeError);
  await assert.rejects(
    () => collect(streamOf([`{"type":"WHATEVER","object":{}}\n`])),
    WatchDecodeError,
  );
  await assert.rejects(() => collect(streamOf([`{"type":"ADDED"}\n`])), WatchDecodeError);
});
