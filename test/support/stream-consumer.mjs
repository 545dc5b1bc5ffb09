// A consumer of a stream's group through the gateway's HTTP API, run as its own process by
// test/e2e/streams-reliability so the test can kill -9 it mid-batch. Each round it first
// reclaims entries other consumers left pending (XAUTOCLAIM, min idle 1 s), else reads new
// ones; it records every entry it processed (one id per line, appended before the ack, so a
// kill between the two makes a duplicate, never a loss), then acknowledges them.
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const { BASE_URL, TOKEN, STREAM, GROUP, CONSUMER, LOG } = process.env;
const PROCESS_MS = Number(process.env.PROCESS_MS ?? 0);
const BATCH = Number(process.env.BATCH ?? 20);
const group = `${BASE_URL}/redis/streams/${encodeURIComponent(STREAM)}/groups/${encodeURIComponent(GROUP)}`;

async function post(path, body) {
  const response = await fetch(`${group}/${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (response.status !== 200) {
    throw new Error(`${path}: ${response.status}`);
  }
  return response.json();
}

async function main() {
  for (;;) {
    try {
      let { entries } = await post('claim', { consumer: CONSUMER, minIdleMs: 1000, count: BATCH });
      if (entries.length === 0) {
        ({ entries } = await post('read', { consumer: CONSUMER, count: BATCH, blockMs: 200 }));
      }
      for (const entry of entries) {
        await sleep(PROCESS_MS);
        appendFileSync(LOG, `${entry.id}\n`);
      }
      if (entries.length > 0) {
        await post('ack', { ids: entries.map((entry) => entry.id) });
      }
    } catch {
      await sleep(100);
    }
  }
}

void main();
