import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/**
 * The import graph of src/ (docs/architecture.md, "Layers never climb"): no cycle between
 * files, and no import from a folder of a higher layer.
 */
const SRC = resolve(__dirname, '../../src');

/** The layer of each top folder of src/; a folder may import from its own layer and below. */
const LAYERS: Record<string, number> = {
  types: 0,
  config: 1,
  errors: 1,
  common: 1,
  observability: 1,
  redis: 2,
  auth: 3,
  limits: 3,
  sse: 3,
  health: 3,
  'near-cache': 3,
  subscriptions: 3,
  kv: 4,
  hashes: 4,
  pubsub: 4,
  streams: 4,
  locks: 4,
  upstash: 4,
  openapi: 5,
  dev: 5,
  '.': 5,
};
const PRIMITIVES = ['kv', 'hashes', 'pubsub', 'streams', 'locks', 'upstash'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      return sources(path);
    }
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

/** The src files a file imports (relative imports, `import type` included). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const targets = [...text.matchAll(/^(?:import|export)[^;]*?from '(\.[^']+)'/gms)].map(
    (match) => match[1],
  );
  return targets.map((target) => {
    const base = resolve(dirname(file), target);
    for (const candidate of [`${base}.ts`, join(base, 'index.ts')]) {
      try {
        if (statSync(candidate).isFile()) {
          return candidate;
        }
      } catch {
        // not this one
      }
    }
    return base;
  });
}

const folderOf = (file: string) => {
  const path = relative(SRC, file);
  return path.includes('/') ? path.split('/')[0] : '.';
};

const files = sources(SRC);
const graph = new Map(files.map((file) => [file, importsOf(file)]));

describe('the layers of src/', () => {
  it('has a layer for every folder', () => {
    const folders = [...new Set(files.map(folderOf))];
    expect(folders.filter((folder) => LAYERS[folder] === undefined)).toEqual([]);
  });

  it('never imports from a higher layer, nor one primitive module from another (but DTOs)', () => {
    const climbing: string[] = [];
    for (const [file, targets] of graph) {
      const from = folderOf(file);
      for (const target of targets) {
        const to = folderOf(target);
        const across =
          PRIMITIVES.includes(from) &&
          PRIMITIVES.includes(to) &&
          from !== to &&
          !target.includes('/dto/');
        if (LAYERS[to] > LAYERS[from] || across) {
          climbing.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
        }
      }
    }
    expect(climbing).toEqual([]);
  });

  it('has no import cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === 'done') {
        return;
      }
      if (state.get(file) === 'open') {
        cycles.push(
          [...path.slice(path.indexOf(file)), file].map((f) => relative(SRC, f)).join(' -> '),
        );
        return;
      }
      state.set(file, 'open');
      for (const target of graph.get(file) ?? []) {
        visit(target, [...path, file]);
      }
      state.set(file, 'done');
    };
    files.forEach((file) => visit(file, []));
    expect(cycles).toEqual([]);
  });

  it('keeps every file of src/ under 400 lines', () => {
    const long = files
      .map((file) => [relative(SRC, file), readFileSync(file, 'utf8').split('\n').length] as const)
      .filter(([, lines]) => lines > 400);
    expect(long).toEqual([]);
  });
});
