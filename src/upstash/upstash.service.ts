import { Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { ChainableCommander } from 'ioredis';
import { KeyAccess } from '../auth/key-patterns';
import { hasScopes, type Principal } from '../auth/principal';
import { SCOPES } from '../auth/scopes';
import { globCostProblem } from '../common/glob';
import { AppConfig } from '../config/app-config';
import { AppError } from '../errors/app-error';
import { SlotRouter, slotGroups } from '../redis/cluster';
import { RedisExecutor } from '../redis/executor';
import { Keyspace } from '../redis/keys';
import type { RedisClient } from '../redis/types';
import { ChannelStreams } from '../subscriptions/channel-streams';
import { GatewayMetrics } from '../observability/gateway-metrics';
import type { LogFields } from '../observability/http-observability';
import { commandLogFields, countCommands, failureResult } from './command-log';
import { UpstashCommands, type CommandName, type PreparedCommand } from './command-table';
import {
  REDIS_REPLY,
  encodeReply,
  unprefixReply,
  upstashMessageFormat,
  type Outcome,
} from './upstash-reply';

/** Redis Cluster's own answer to a command whose keys are in more than one hash slot. */
const CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot";

/** One request of the protocol: who sent it, its JSON body, and where its log fields go. */
export interface UpstashRequest {
  principal: Principal;
  body: unknown;
  /** `Upstash-Encoding: base64`: every string of the answer in base64. */
  base64: boolean;
  log: { logFields?: LogFields };
}

const badRequest = (detail: string) => new AppError('BAD_REQUEST', detail);

/** A Redis error reply to a command, as opposed to a connection that failed under it. */
const isReplyError = (error: unknown): boolean =>
  error instanceof Error && error.name === 'ReplyError';

function toArgument(value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') {
    return String(value);
  }
  throw badRequest('a command is an array of strings, numbers and booleans');
}

/**
 * Queues a command with Buffer replies, its name upper case: ioredis reshapes some replies by
 * the lower-case name (HGETALL into an object, XREAD and the WITHSCORES replies into pairs),
 * and the caller must get Redis's reply as it is. Key lookup in cluster mode ignores case.
 */
function queue(pipeline: ChainableCommander, { argv }: PreparedCommand): void {
  pipeline.callBuffer(argv[0].toUpperCase(), ...argv.slice(1));
}

function parseCommand(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || typeof value[0] !== 'string') {
    throw badRequest('a command is a JSON array whose first element is its name');
  }
  return value.map(toArgument);
}

/**
 * The Upstash REST protocol on our tokens: one command, a pipeline (each command on its own)
 * and a transaction (MULTI/EXEC). Every command of a request is checked and authorised, and
 * the scope of the whole request verified, before any of them is sent.
 */
@Injectable()
export class UpstashService {
  private readonly prefix: Buffer;

  constructor(
    private readonly redis: RedisExecutor,
    private readonly router: SlotRouter,
    private readonly commands: UpstashCommands,
    private readonly access: KeyAccess,
    private readonly keyspace: Keyspace,
    private readonly config: AppConfig,
    private readonly metrics: GatewayMetrics,
    private readonly streams: ChannelStreams,
  ) {
    this.prefix = Buffer.from(config.redis.keyPrefix);
  }

  async command({ principal, body, base64, log }: UpstashRequest): Promise<unknown> {
    const [outcome] = await this.observed(log, body, false, async () => {
      const [command] = this.prepareAll(principal, [parseCommand(body)]);
      return this.run(principal, [command]);
    });
    if ('error' in outcome) {
      throw new AppError('BAD_REQUEST', outcome.error, { reason: REDIS_REPLY });
    }
    return this.answer({ result: encodeReply(outcome.result, base64) });
  }

  pipeline(request: UpstashRequest): Promise<unknown> {
    return this.many(request, (commands) => this.run(request.principal, commands));
  }

  multiExec(request: UpstashRequest): Promise<unknown> {
    return this.many(request, (commands) => this.transaction(commands));
  }

  /** A pipeline or a transaction: every command prepared, then executed, then encoded. */
  private async many(
    { principal, body, base64, log }: UpstashRequest,
    execute: (commands: PreparedCommand[]) => Promise<Outcome[]>,
  ): Promise<unknown> {
    const outcomes = await this.observed(log, body, true, () =>
      execute(this.prepareAll(principal, this.parseMany(body))),
    );
    return this.answer(outcomes.map((outcome) => this.encode(outcome, base64)));
  }

  /** SUBSCRIBE or PSUBSCRIBE as SSE in the SDK's frames, over the pub/sub routes' machinery. */
  async subscribe(
    principal: Principal,
    kind: 'channel' | 'pattern',
    name: string,
    log: { logFields?: LogFields },
    reply: FastifyReply,
  ): Promise<void> {
    const command = kind === 'channel' ? 'subscribe' : 'psubscribe';
    const format = upstashMessageFormat(kind, name);
    await this.observed(log, [command], false, async () => {
      await this.streams.open(principal, kind, name, format, reply);
      return [{ result: 1 }];
    });
  }

  /**
   * Runs a request's commands with their names on the request's log line and each one counted
   * by family and result. Only names the server knows are used, never arguments.
   */
  private async observed(
    log: { logFields?: LogFields },
    body: unknown,
    pipeline: boolean,
    work: () => Promise<Outcome[]>,
  ): Promise<Outcome[]> {
    const { maxPipelineCommands } = this.config.upstash;
    const listed = pipeline ? (Array.isArray(body) ? body : []) : [body];
    const names: CommandName[] = listed
      .slice(0, maxPipelineCommands)
      .map((command) => this.commands.nameOf(command));
    if (names.length > 0) {
      log.logFields = commandLogFields(names, pipeline);
    }
    try {
      const outcomes = await work();
      countCommands(this.metrics, names, outcomes);
      return outcomes;
    } catch (error) {
      countCommands(this.metrics, names, failureResult(error));
      throw error;
    }
  }

  /** MULTI/EXEC: a transaction that fails as a whole is a Redis error reply of its own. */
  private async transaction(commands: PreparedCommand[]): Promise<Outcome[]> {
    if (commands.some((command) => command.scan)) {
      throw badRequest('SCAN is not available inside a transaction');
    }
    const keys = commands.flatMap((command) => command.keys);
    if (this.spansSlots(keys)) {
      throw new AppError('BAD_REQUEST', CROSSSLOT, { reason: REDIS_REPLY });
    }
    const kind = commands.every((command) => command.readonly) ? 'read' : 'write';
    const outcomes = await this.redis.run('upstash.multi-exec', kind, async (client) => {
      const multi = client.multi();
      commands.forEach((command) => queue(multi, command));
      try {
        return this.outcomes(commands, (await multi.exec()) ?? []);
      } catch (error) {
        if (isReplyError(error)) {
          return error as Error; // EXECABORT: nothing ran
        }
        throw error;
      }
    });
    if (outcomes instanceof Error) {
      throw new AppError('BAD_REQUEST', outcomes.message, { reason: REDIS_REPLY });
    }
    return outcomes;
  }

  private parseMany(body: unknown): string[][] {
    const { maxPipelineCommands } = this.config.upstash;
    if (!Array.isArray(body) || body.length === 0) {
      throw badRequest('a pipeline is a non-empty JSON array of commands');
    }
    if (body.length > maxPipelineCommands) {
      throw badRequest(
        `a pipeline holds at most ${maxPipelineCommands} commands (upstash.maxPipelineCommands)`,
      );
    }
    return body.map(parseCommand);
  }

  /** Every command checked and authorised, and the scope they need together, before any runs. */
  private prepareAll(principal: Principal, argvs: string[][]): PreparedCommand[] {
    const commands = argvs.map((argv) => this.commands.prepare(principal, argv));
    const writes = commands.find((command) => !command.readonly);
    if (writes && !hasScopes(principal, [SCOPES.write])) {
      throw new AppError(
        'INSUFFICIENT_SCOPE',
        `${writes.name.toUpperCase()} changes Redis: it needs the scope ${SCOPES.write}.`,
        {
          headers: {
            'www-authenticate': `Bearer error="insufficient_scope", scope="${SCOPES.write}"`,
          },
        },
      );
    }
    return commands;
  }

  private encode(outcome: Outcome, base64: boolean): Outcome {
    return 'error' in outcome ? outcome : { result: encodeReply(outcome.result, base64) };
  }

  /** The answer, unless its JSON is larger than limits.maxResponseBytes (413). */
  private answer<T>(answer: T): T {
    const { maxResponseBytes } = this.config.limits;
    if (Buffer.byteLength(JSON.stringify(answer)) > maxResponseBytes) {
      throw AppError.responseTooLarge(maxResponseBytes);
    }
    return answer;
  }

  /**
   * The commands in order, not atomically: runs of plain commands as pipelines (in cluster
   * mode one per hash slot, merged back in order), a blocking command on the blocking pool
   * under the caller's share, SCAN confined to the prefix and the token's patterns.
   */
  private async run(principal: Principal, commands: PreparedCommand[]): Promise<Outcome[]> {
    const outcomes: Outcome[] = [];
    let batch: PreparedCommand[] = [];
    const flush = async () => {
      if (batch.length > 0) {
        outcomes.push(...(await this.batch(batch)));
        batch = [];
      }
    };
    for (const command of commands) {
      if (this.spansSlots(command.keys)) {
        // What the cluster would answer, without sending it.
        await flush();
        outcomes.push({ error: CROSSSLOT });
      } else if (command.scan) {
        await flush();
        outcomes.push(await this.scan(principal, command));
      } else if (command.blockMs !== undefined) {
        await flush();
        outcomes.push(await this.blocking(principal, command, command.blockMs));
      } else {
        batch.push(command);
      }
    }
    await flush();
    return outcomes;
  }

  /** Whether keys lie in more than one hash slot in cluster mode (elsewhere never). */
  private spansSlots(keys: string[]): boolean {
    return this.config.redis.mode === 'cluster' && slotGroups(keys).length > 1;
  }

  private async batch(commands: PreparedCommand[]): Promise<Outcome[]> {
    const kind = commands.every((command) => command.readonly) ? 'read' : 'write';
    const groups = this.router.groups(commands.map((command) => command.keys[0] ?? ''));
    const replies = await Promise.all(
      groups.map((group) =>
        this.redis.run('upstash.pipeline', kind, (client) =>
          this.send(
            client,
            group.map((index) => commands[index]),
          ),
        ),
      ),
    );
    const merged = new Array<Outcome>(commands.length);
    groups.forEach((group, n) => group.forEach((index, at) => (merged[index] = replies[n][at])));
    return merged;
  }

  private async send(client: RedisClient, commands: PreparedCommand[]): Promise<Outcome[]> {
    const pipeline = client.pipeline();
    commands.forEach((command) => queue(pipeline, command));
    return this.outcomes(commands, (await pipeline.exec()) ?? []);
  }

  /** Replies and error replies per command; any other failure fails the whole request. */
  private outcomes(commands: PreparedCommand[], results: [Error | null, unknown][]): Outcome[] {
    return results.map(([error, value], index) => {
      if (error) {
        if (isReplyError(error)) {
          return { error: error.message };
        }
        throw error;
      }
      return { result: unprefixReply(commands[index], value, this.prefix) };
    });
  }

  private async blocking(
    principal: Principal,
    command: PreparedCommand,
    blockMs: number,
  ): Promise<Outcome> {
    const kind = command.readonly ? 'read' : 'write';
    const [outcome] = await this.redis.runBlocking(
      `upstash.${command.name}`,
      kind,
      blockMs,
      (client) => this.send(client, [command]),
      { owner: principal.sub },
    );
    return outcome;
  }

  private async scan(principal: Principal, command: PreparedCommand): Promise<Outcome> {
    const scan = command.scan!;
    const problem = globCostProblem(scan.match, this.config.limits.maxPatternBytes);
    if (problem) {
      throw badRequest(`MATCH ${problem}`);
    }
    const count = Math.min(scan.count ?? 10, this.config.limits.maxScanCount);
    const cursor = this.router.scan(scan.cursor);
    const match = this.keyspace.toRedisPattern(scan.match);
    const keys = await this.redis.run('upstash.scan', 'read', (client) =>
      cursor.step(client, match, count, scan.type),
    );
    const visible = keys
      .map((key) => this.access.visibleName(principal, key))
      .filter((name): name is string => name !== null);
    return { result: [cursor.next, visible] };
  }
}
