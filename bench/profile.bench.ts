/**
 * Where the server's CPU goes per request, by layer: V8's sampling profiler (`--cpu-prof`) on the
 * gateway under a steady autocannon load, one process per scenario, and on the bare baseline
 * (bench/baseline-server.js) for comparison. Only the samples taken while the measured load ran
 * count (the profile's timestamps and this process's `process.hrtime` share the monotonic clock),
 * divided by the requests answered meanwhile, so a row reads as microseconds of server CPU per
 * request. A sample's time goes to the layer of the function it was in; a built-in function (no
 * script of its own: JSON.parse, a Map lookup) counts for the layer of its caller. Idle samples
 * are left out; `(program)` is V8's own work the profiler cannot place.
 *
 *   node bench/run.js profile                       # after npm run build
 *   BENCH_PROFILE_SECONDS=10 BENCH_PROFILE_TOP=25 node bench/run.js profile
 *
 * Figures, never assertions; the sampling interval (V8's default, about 1 ms at this load) makes
 * small layers noisy by a microsecond or so. The same set-up as bench/http.bench.ts: one Redis,
 * the local issuer, RS256 tokens, request log at info (to /dev/null), metrics on, rate limits on
 * but out of reach; server on one CPU, load generator and Redis on the other.
 */
import autocannon from 'autocannon';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SCOPES } from '../src/auth/scopes';
import { LocalIssuer } from '../src/dev/local-issuer';
import {
  pinProcess,
  pinnableCpus,
  startBaseline,
  startGateway,
  throwawayRedis,
  type Gateway,
  type Placement,
} from './support';

const SECONDS = Number(process.env.BENCH_PROFILE_SECONDS ?? 6);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const VALUE = 'x'.repeat(100);
/** BENCH_PROFILE_TOP=n also prints each scenario's n functions with the most self time. */
const TOP = Number(process.env.BENCH_PROFILE_TOP ?? 0);

/** Layers in the order they are tried: the first whose pattern matches a script's URL. */
const LAYERS: [layer: string, pattern: RegExp][] = [
  [
    'auth (token, scopes)',
    /\/dist\/auth\/|node_modules\/(passport|passport-jwt|jsonwebtoken|jws|jwa|jose|jwks-rsa)\//,
  ],
  ['rate limits', /\/dist\/limits\/|node_modules\/rate-limiter-flexible\//],
  [
    'validation and body parsing',
    /\/dist\/common\/(validation|body-parsers)|\/dto\/|node_modules\/(class-validator|class-transformer|validator|libphonenumber-js|secure-json-parse)\//,
  ],
  [
    'Nest (router, pipeline, DI)',
    /node_modules\/(@nestjs|reflect-metadata|rxjs|path-to-regexp|tslib)\//,
  ],
  [
    'serialisation (response schema)',
    /node_modules\/(fast-json-stringify|fast-uri|json-schema-ref-resolver)\//,
  ],
  [
    'logging (pino)',
    /node_modules\/(pino|nestjs-pino|pino-std-serializers|sonic-boom|thread-stream|quick-format-unescaped|fast-redact|@pinojs|atomic-sleep|on-exit-leak-free)\//,
  ],
  ['metrics (prom-client)', /node_modules\/(prom-client|tdigest|bintrees)\//],
  ['request line and metrics (ours)', /\/dist\/observability\//],
  [
    'Redis client (ioredis, ours)',
    /\/dist\/redis\/|node_modules\/(ioredis|redis-parser|redis-errors|denque|cluster-key-slot|standard-as-callback|lodash\.)/,
  ],
  [
    'Fastify (routing, hooks, reply)',
    /node_modules\/(fastify|find-my-way|avvio|light-my-request|@fastify|fast-querystring|toad-cache|fast-decode-uri-component|abstract-logging|process-warning|rfdc|fastify-plugin|safe-regex2|ret)\//,
  ],
  ['handlers and errors (ours)', /\/dist\/|baseline-server\.js/],
  ['hashing (node:crypto; the token cache)', /^node:internal\/crypto/],
  ['HTTP parser and server (Node)', /^node:(_http|http|internal\/http)/],
  [
    'sockets and streams (Node)',
    /^node:(net|stream|internal\/streams|internal\/stream_base|internal\/net)/,
  ],
  [
    'promises, ticks, timers (Node)',
    /^node:(internal\/process\/task_queues|internal\/timers|timers|internal\/async_hooks|async_hooks)/,
  ],
  ['Node core, other', /^node:/],
];
/** Native functions without a script, placed by name where their caller would mislead. */
const SOCKET_NATIVES =
  /^(writeString|writeBuffer|writev|writeUtf8String|writeLatin1String|writeAsciiString|readStart|onStreamRead)$/;
const GC = 'garbage collection';
const UNPLACED = 'V8, unattributed';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

function layerOf(url: string): string | undefined {
  return LAYERS.find(([, pattern]) => pattern.test(url))?.[0];
}

/** µs of CPU per layer between `fromUs` and `toUs` (monotonic clock, µs). */
function byLayer(
  profile: Profile,
  fromUs: number,
  toUs: number,
): { totals: Map<string, number>; functions: Map<string, number> } {
  const layer = new Map<number, string>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) {
      parent.set(child, node.id);
    }
  }
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const resolve = (id: number): string => {
    const known = layer.get(id);
    if (known !== undefined) {
      return known;
    }
    const { functionName, url } = byId.get(id)!.callFrame;
    const up = parent.get(id);
    const found =
      functionName === '(garbage collector)'
        ? GC
        : functionName === '(idle)'
          ? 'idle'
          : url
            ? (layerOf(url) ?? 'other packages')
            : SOCKET_NATIVES.test(functionName)
              ? 'sockets and streams (Node)'
              : up === undefined || functionName === '(program)' || functionName === '(root)'
                ? UNPLACED
                : resolve(up);
    layer.set(id, found);
    return found;
  };
  const totals = new Map<string, number>();
  const functions = new Map<string, number>();
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i];
    // A sample stands for the interval up to the next one.
    const span = profile.timeDeltas[i + 1] ?? 0;
    if (at < fromUs || at > toUs) {
      continue;
    }
    const name = resolve(profile.samples[i]);
    if (name !== 'idle') {
      totals.set(name, (totals.get(name) ?? 0) + span);
      const { functionName, url } = byId.get(profile.samples[i])!.callFrame;
      const where = `${functionName || '(anonymous)'} ${url.replace(/.*node_modules\//, '')} [${name}]`;
      functions.set(where, (functions.get(where) ?? 0) + span);
    }
  }
  return { totals, functions };
}

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

interface Scenario {
  name: string;
  start: (placement: Placement) => Promise<Gateway>;
  path: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/** Loads one server under the profiler; answers µs per request by layer and the request count. */
async function profileOne(
  scenario: Scenario,
  cpu: number | undefined,
): Promise<{ perRequest: Map<string, number>; requests: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'redis-gateway-profile-'));
  const server = await scenario.start({
    cpu,
    execArgv: ['--cpu-prof', `--cpu-prof-dir=${dir}`],
  });
  const fire = (seconds: number) =>
    autocannon({
      url: `${server.url}${scenario.path}`,
      connections: CONNECTIONS,
      duration: seconds,
      method: scenario.method ?? 'GET',
      headers: scenario.headers,
      body: scenario.body,
    });
  try {
    await fire(2); // warm-up: the JIT and the caches, outside the window
    const from = nowUs();
    const result = await fire(SECONDS);
    const to = nowUs();
    server.stop();
    await server.exited;
    const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
    if (!file) {
      throw new Error(`${scenario.name}: no CPU profile was written`);
    }
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
    const requests = Object.entries(result.statusCodeStats)
      .filter(([status]) => status.startsWith('2'))
      .reduce((sum, [, stats]) => sum + stats.count, 0);
    if (result.non2xx > 0 || requests === 0) {
      throw new Error(`${scenario.name}: ${result.non2xx} answers were not 2xx`);
    }
    const { totals, functions } = byLayer(profile, from, to);
    const perRequest = new Map([...totals].map(([name, us]) => [name, us / requests]));
    if (TOP > 0) {
      console.log(`  ${scenario.name}: the ${TOP} functions with the most self time, µs/req`);
      for (const [where, us] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
        console.log(`    ${(us / requests).toFixed(1).padStart(6)}  ${where}`);
      }
    }
    return { perRequest, requests };
  } finally {
    server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const [serverCpu, loadCpu] = pinnableCpus();
  if (loadCpu !== undefined) {
    pinProcess(process.pid, loadCpu);
  }
  const redis = await throwawayRedis({ cpu: loadCpu });
  const issuer = await LocalIssuer.start();
  const dir = mkdtempSync(join(tmpdir(), 'redis-gateway-profile-config-'));
  const configFile = join(dir, 'bench.yaml');
  writeFileSync(configFile, 'rateLimits:\n  requestsPerSecond: 10000000\n  burst: 100000000\n');
  const env = {
    REDIS_URL: redis.url,
    OIDC_ISSUER: issuer.url,
    OIDC_AUDIENCE: issuer.audience,
    CONFIG_FILE: configFile,
  };
  try {
    const token = await issuer.token({ scopes: [SCOPES.read, SCOPES.write], ttlS: 3600 });
    const auth = { authorization: `Bearer ${token}` };
    const json = { ...auth, 'content-type': 'application/json' };
    const put = JSON.stringify({ value: VALUE });
    const seed = await startGateway(env);
    await (
      await fetch(`${seed.url}/redis/kv/bench-kv`, { method: 'PUT', headers: json, body: put })
    ).arrayBuffer();
    seed.stop();
    await seed.exited;
    const scenarios: Scenario[] = [
      { name: 'baseline GET', start: (p) => startBaseline(redis.url, p), path: '/kv/bench-kv' },
      {
        name: 'KV GET',
        start: (p) => startGateway(env, p),
        path: '/redis/kv/bench-kv',
        headers: auth,
      },
      {
        name: 'baseline PUT',
        start: (p) => startBaseline(redis.url, p),
        path: '/kv/bench-put',
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: put,
      },
      {
        name: 'KV PUT',
        start: (p) => startGateway(env, p),
        path: '/redis/kv/bench-put',
        method: 'PUT',
        headers: json,
        body: put,
      },
    ];
    const columns: { name: string; perRequest: Map<string, number>; requests: number }[] = [];
    for (const scenario of scenarios) {
      const measured = await profileOne(scenario, serverCpu);
      columns.push({ name: scenario.name, ...measured });
      console.log(`  profiled ${scenario.name}: ${measured.requests} requests in ${SECONDS} s`);
    }
    const layers = [...LAYERS.map(([name]) => name), 'other packages', GC, UNPLACED];
    const cell = (us: number | undefined) => (us === undefined || us < 0.05 ? '-' : us.toFixed(1));
    const header = `| layer | ${columns.map((column) => `${column.name} µs/req`).join(' | ')} |`;
    const lines = [
      header,
      `| --- | ${columns.map(() => '---:').join(' | ')} |`,
      ...layers
        .filter((layer) => columns.some((column) => (column.perRequest.get(layer) ?? 0) >= 0.05))
        .map(
          (layer) =>
            `| ${layer} | ${columns.map((column) => cell(column.perRequest.get(layer))).join(' | ')} |`,
        ),
      `| **total** | ${columns
        .map(
          (column) =>
            `**${[...column.perRequest.values()].reduce((a, b) => a + b, 0).toFixed(1)}**`,
        )
        .join(' | ')} |`,
    ];
    console.log(
      `\nserver CPU per request by layer (V8 sampling profiler, ${SECONDS} s at ${CONNECTIONS} connections each):\n\n${lines.join('\n')}\n`,
    );
  } finally {
    await issuer.close();
    redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
