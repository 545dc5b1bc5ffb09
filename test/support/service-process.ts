import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { freePort, sleep } from './ports';

export const MAIN = resolve(__dirname, '../../dist/main.js');

/**
 * The built service (`node dist/main.js`, as `npm run start:prod` runs it) as a child process,
 * for what only a real process shows: start-up failures, signals, exit codes and stdout.
 */
export class ServiceProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    child.stdout?.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  static async start(env: Record<string, string>): Promise<ServiceProcess> {
    if (!existsSync(MAIN)) {
      throw new Error(`${MAIN} is missing: run \`npm run build\` (npm test does it first)`);
    }
    const port = await freePort();
    const child = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new ServiceProcess(child, port);
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Waits until /healthz answers (or the process exits). Generous: a start-up on a busy machine
   * can take seconds, and no test judges this time.
   */
  async listening(timeoutMs = 20000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) {
        throw new Error(`service exited early: ${this.stderr}`);
      }
      try {
        if ((await fetch(`${this.baseUrl}/healthz`)).ok) {
          return;
        }
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error('service did not start listening');
  }

  /** JSON log lines written to stdout so far. */
  logLines(): Record<string, unknown>[] {
    return this.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}
