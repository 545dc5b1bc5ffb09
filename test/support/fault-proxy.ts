import { createServer, connect, type Server, type Socket } from 'node:net';

/** What the proxy does with the bytes of its connections (docs/testing.md, the fault proxy). */
export type FaultMode =
  | { kind: 'pass' }
  | { kind: 'delay'; ms: number }
  | { kind: 'freeze' }
  | { kind: 'swallowNextReplyAndReset' };

export interface FaultEvent {
  /** Milliseconds since the proxy started. */
  t: number;
  type: 'accept' | 'close' | 'swallowed' | 'reset' | 'fin' | 'mode' | 'listen' | 'unlisten';
  connection?: number;
  detail?: string;
}

export interface FaultProxyOptions {
  /** The Redis behind the proxy. */
  targetPort: number;
  targetHost?: string;
  /** Port to listen on; a free one when absent. */
  port?: number;
}

type Direction = 'up' | 'down';

/**
 * One client connection and its upstream twin, with an outgoing queue per direction: a chunk
 * leaves when it is due and never before the chunks queued ahead of it, so changing modes
 * (delay, then pass) never reorders the Redis protocol stream.
 */
class Link {
  /** Set by swallowNextReplyAndReset once this link forwarded the request to swallow after. */
  awaitingReplyToSwallow = false;
  /** The start of the request whose reply is to be swallowed (for the event log). */
  swallowAfter = '';
  private readonly queues: Record<Direction, { due: number; chunk: Buffer }[]> = {
    up: [],
    down: [],
  };
  private readonly timers: Partial<Record<Direction, NodeJS.Timeout>> = {};

  constructor(
    readonly id: number,
    readonly client: Socket,
    readonly upstream: Socket,
    private readonly frozen: () => boolean,
    private readonly sent: (direction: Direction, bytes: number) => void,
  ) {}

  send(direction: Direction, chunk: Buffer, delayMs = 0): void {
    this.queues[direction].push({ due: Date.now() + delayMs, chunk });
    this.drain(direction);
  }

  /** Writes what is due, in order, unless the proxy is frozen; re-arms for the rest. */
  drain(direction: Direction): void {
    clearTimeout(this.timers[direction]);
    this.timers[direction] = undefined;
    if (this.frozen()) {
      return;
    }
    const queue = this.queues[direction];
    const to = direction === 'up' ? this.upstream : this.client;
    while (queue.length > 0 && queue[0].due <= Date.now()) {
      const { chunk } = queue[0];
      queue.shift();
      if (!to.destroyed) {
        this.sent(direction, chunk.length);
        to.write(chunk);
      }
    }
    if (queue.length > 0) {
      const timer = setTimeout(() => this.drain(direction), queue[0].due - Date.now());
      this.timers[direction] = timer.unref();
    }
  }

  destroy(): void {
    clearTimeout(this.timers.up);
    clearTimeout(this.timers.down);
    this.client.destroy();
    this.upstream.destroy();
  }
}

/**
 * A TCP proxy between the service and one Redis for fault injection: latency, a lost reply
 * followed by a reset, a frozen (half-open) connection, resets of every connection, and
 * refusing new connections, all switchable while traffic flows. It records what it did in
 * `events` and counts bytes, so tests can assert that a fault really happened.
 */
export class FaultProxy {
  readonly events: FaultEvent[] = [];
  readonly bytes = { up: 0, down: 0 };
  /** Connections accepted since the start. */
  accepted = 0;

  private mode: FaultMode = { kind: 'pass' };
  private readonly links = new Map<number, Link>();
  private nextId = 1;
  private server?: Server;
  /** Listeners closed by refuse(): each settles once its last connection has ended. */
  private readonly retired: Promise<void>[] = [];
  private readonly started = Date.now();
  /** Settles the promise of the armed swallowNextReplyAndReset. */
  private swallowed?: () => void;

  private constructor(
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy(options.port ?? 0, {
      host: options.targetHost ?? '127.0.0.1',
      port: options.targetPort,
    });
    await proxy.accept();
    return proxy;
  }

  /** A redis:// URL that points the service at the proxy. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Connections open right now. */
  get openConnections(): number {
    return this.links.size;
  }

  get currentMode(): FaultMode['kind'] {
    return this.mode.kind;
  }

  /** Forward everything as it comes; releases frozen connections. */
  pass(): void {
    this.setMode({ kind: 'pass' });
  }

  /** Hold every chunk, both ways, for `ms` before forwarding it (order is kept). */
  delay(ms: number): void {
    this.setMode({ kind: 'delay', ms });
  }

  /**
   * Stop forwarding both ways while keeping every socket open, like a path that black-holes
   * packets: nothing is read, nothing is closed. New connections are accepted and frozen too.
   */
  freeze(): void {
    this.setMode({ kind: 'freeze' });
  }

  /**
   * Forward the next request a client sends, drop the reply Redis gives to it and reset
   * (RST) that client's socket: Redis has executed the command, the client never hears of it.
   * The mode returns to `pass` once it fired; the promise resolves then.
   */
  swallowNextReplyAndReset(): Promise<void> {
    const fired = new Promise<void>((resolve) => (this.swallowed = resolve));
    this.setMode({ kind: 'swallowNextReplyAndReset' });
    return fired;
  }

  /** RST every open connection, client side and Redis side (the mode stays as it is). */
  reset(): void {
    for (const link of this.links.values()) {
      this.record('reset', link.id);
      link.client.resetAndDestroy();
      link.upstream.resetAndDestroy();
      link.destroy();
      this.links.delete(link.id);
    }
  }

  /** Close every open connection with a FIN, both sides. */
  finish(): void {
    for (const link of this.links.values()) {
      this.record('fin', link.id);
      link.client.end();
      link.upstream.end();
    }
  }

  /** Stop listening: new connections are refused (ECONNREFUSED); open ones stay as they are. */
  refuse(): void {
    const server = this.server;
    if (!server) {
      return;
    }
    this.server = undefined;
    // close() stops listening at once; its callback waits for the open connections to end.
    this.retired.push(new Promise<void>((resolve) => server.close(() => resolve())));
    this.record('unlisten');
  }

  /** Listen (again) on the proxy's port. */
  async accept(): Promise<void> {
    if (this.server) {
      return;
    }
    const server = createServer({ pauseOnConnect: true }, (client) => this.onConnection(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address && typeof address === 'object') {
      (this as { port: number }).port = address.port;
    }
    this.server = server;
    this.record('listen');
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    this.refuse();
    for (const link of this.links.values()) {
      link.destroy();
    }
    this.links.clear();
    this.swallowed?.();
    await Promise.all(this.retired.splice(0));
  }

  /** The events of one type, for assertions. */
  count(type: FaultEvent['type']): number {
    return this.events.filter((event) => event.type === type).length;
  }

  private setMode(mode: FaultMode): void {
    const wasFrozen = this.mode.kind === 'freeze';
    this.mode = mode;
    this.record('mode', undefined, mode.kind === 'delay' ? `delay ${mode.ms}` : mode.kind);
    const frozen = mode.kind === 'freeze';
    for (const link of this.links.values()) {
      link.awaitingReplyToSwallow = false;
      if (frozen) {
        link.client.pause();
        link.upstream.pause();
      } else if (wasFrozen) {
        link.drain('up');
        link.drain('down');
        link.client.resume();
        link.upstream.resume();
      }
    }
  }

  private onConnection(client: Socket): void {
    const id = this.nextId++;
    this.accepted++;
    this.record('accept', id);
    const upstream = connect({ ...this.target, noDelay: true });
    client.setNoDelay(true);
    const link = new Link(
      id,
      client,
      upstream,
      () => this.mode.kind === 'freeze',
      (direction, bytes) => (this.bytes[direction] += bytes),
    );
    this.links.set(id, link);

    const closeBoth = () => {
      if (this.links.delete(id)) {
        this.record('close', id);
      }
      link.destroy();
    };
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
    client.on('data', (chunk: Buffer) => this.forward(link, 'up', chunk));
    upstream.on('data', (chunk: Buffer) => this.forward(link, 'down', chunk));
    if (this.mode.kind === 'freeze') {
      // The kernel accepted the connection; nothing is read from it until the proxy thaws.
      upstream.pause();
    } else {
      client.resume();
    }
  }

  private forward(link: Link, direction: Direction, chunk: Buffer): void {
    const mode = this.mode;
    switch (mode.kind) {
      case 'freeze':
        // Chunks already read when the freeze began wait in the queue until it ends.
        break;
      case 'swallowNextReplyAndReset':
        if (direction === 'up') {
          link.awaitingReplyToSwallow = true;
          link.swallowAfter = chunk.subarray(0, 80).toString('latin1');
          break;
        }
        if (link.awaitingReplyToSwallow) {
          this.record(
            'swallowed',
            link.id,
            `${chunk.length} reply bytes after ${JSON.stringify(link.swallowAfter)}`,
          );
          this.links.delete(link.id);
          // RST the client first (destroy() alone would close with a FIN), then the rest.
          link.client.resetAndDestroy();
          link.destroy();
          this.mode = { kind: 'pass' };
          this.record('mode', undefined, 'pass');
          this.swallowed?.();
          return;
        }
        break;
      case 'delay':
        link.send(direction, chunk, mode.ms);
        return;
      case 'pass':
        break;
    }
    link.send(direction, chunk);
  }

  private record(type: FaultEvent['type'], connection?: number, detail?: string): void {
    this.events.push({ t: Date.now() - this.started, type, connection, detail });
  }
}
