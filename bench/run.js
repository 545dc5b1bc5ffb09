// Runs benchmarks written in TypeScript without a separate build of bench/: each file is
// compiled on require by @swc/core (a dev dependency), as Jest does. The gateway itself runs
// from dist/ (npm run bench builds it first).
//
//   node bench/run.js            every bench/*.bench.ts, one after the other
//   node bench/run.js sse locks  only those
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS require hook */
const { readFileSync, readdirSync } = require('node:fs');
const { join } = require('node:path');
const { spawnSync } = require('node:child_process');
const { transformSync } = require('@swc/core');

const [name] = process.argv.slice(2);
if (process.env.BENCH_CHILD) {
  require.extensions['.ts'] = (module, filename) => {
    const { code } = transformSync(readFileSync(filename, 'utf8'), {
      filename,
      sourceMaps: 'inline',
      jsc: {
        parser: { syntax: 'typescript', decorators: true },
        transform: { legacyDecorator: true, decoratorMetadata: true },
        target: 'es2022',
      },
      module: { type: 'commonjs' },
    });
    module._compile(code, filename);
  };
  require(join(__dirname, `${name}.bench.ts`));
} else {
  const names =
    process.argv.length > 2
      ? process.argv.slice(2)
      : readdirSync(__dirname)
          .filter((f) => f.endsWith('.bench.ts'))
          .map((f) => f.replace('.bench.ts', ''));
  let failed = false;
  for (const bench of names) {
    console.log(`\n=== bench/${bench}.bench.ts`);
    const run = spawnSync(process.execPath, [__filename, bench], {
      stdio: 'inherit',
      env: { ...process.env, BENCH_CHILD: '1' },
    });
    failed ||= run.status !== 0;
  }
  process.exit(failed ? 1 : 0);
}
