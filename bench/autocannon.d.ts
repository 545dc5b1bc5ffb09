/** The part of autocannon 9's programmatic API that bench/http.bench.ts uses (it ships no types). */
declare module 'autocannon' {
  namespace autocannon {
    type Context = Record<string, unknown>;

    interface Request {
      method?: string;
      path?: string;
      headers?: Record<string, string>;
      body?: string;
      /** Returns the request to send, or undefined to start the sequence again. */
      setupRequest?: (request: Request, context: Context) => Request | undefined;
      onResponse?: (
        status: number,
        body: string,
        context: Context,
        headers: Record<string, string>,
      ) => void;
    }

    interface Client {
      setRequests(requests: Request[]): void;
    }

    interface Options {
      url: string;
      connections?: number;
      /** Seconds. */
      duration?: number;
      warmup?: { connections?: number; duration?: number };
      method?: string;
      headers?: Record<string, string>;
      body?: string;
      requests?: Request[];
      setupClient?: (client: Client) => void;
      /** Requests per second over all connections, as a budget per connection and second. */
      overallRate?: number;
      timeout?: number;
    }

    interface Histogram {
      average: number;
      p50: number;
      p99: number;
      max: number;
    }

    interface Result {
      requests: Histogram;
      /** Milliseconds, recorded as whole numbers. */
      latency: Histogram;
      /** Seconds. */
      duration: number;
      errors: number;
      timeouts: number;
      non2xx: number;
      resets: number;
      statusCodeStats: Record<string, { count: number }>;
    }

    interface Instance extends PromiseLike<Result> {
      /** The measured run begins (after any warm-up). */
      on(event: 'start', listener: () => void): this;
      on(
        event: 'response',
        listener: (client: Client, status: number, bytes: number, responseTimeMs: number) => void,
      ): this;
      stop(): void;
    }
  }

  function autocannon(options: autocannon.Options): autocannon.Instance;
  export = autocannon;
}
