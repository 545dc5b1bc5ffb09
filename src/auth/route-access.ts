import { RequestMethod, type INestApplicationContext } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner, ModulesContainer, Reflector } from '@nestjs/core';
import { IS_PUBLIC } from '../common/public.decorator';
import { ACCEPTS_TICKET } from './accepts-ticket.decorator';
import { REQUIRED_SCOPES } from './require-scopes.decorator';
import type { Scope } from './scopes';

/** Who may reach one route of a controller, from its decorators. */
export interface RouteAccess {
  method: string;
  /** The route template as the router knows it: `/redis/kv/:key`. */
  path: string;
  /** `Controller.method`, for logs. */
  handler: string;
  isPublic: boolean;
  /** Every one is required; none (undefined or empty) on a route that is not public: refused. */
  scopes: readonly Scope[] | undefined;
  acceptsTicket: boolean;
}

/** Nest keeps a path as a string or a list of strings (several paths for one handler). */
const asList = (value: string | string[] | undefined): string[] =>
  value === undefined ? [''] : Array.isArray(value) ? value : [value];

function joinPath(...parts: string[]): string {
  return `/${parts
    .flatMap((part) => part.split('/'))
    .filter(Boolean)
    .join('/')}`;
}

/**
 * Every route the application's controllers declare, with its access metadata, read from the
 * same decorators (`@Public()`, `@RequireScopes()`, `@AcceptsTicket()`) on the method or its
 * controller: what the request guard enforces and the route → scopes snapshot test lists.
 */
export function discoverRoutes(app: INestApplicationContext): RouteAccess[] {
  const discovery = new DiscoveryService(app.get(ModulesContainer));
  const scanner = new MetadataScanner();
  const reflector = new Reflector();
  const routes: RouteAccess[] = [];
  for (const wrapper of discovery.getControllers()) {
    const controller = wrapper.metatype as (new (...args: never[]) => object) | null;
    if (!controller) {
      continue;
    }
    const prototype = controller.prototype as Record<string, unknown>;
    const controllerPaths = asList(
      Reflect.getMetadata(PATH_METADATA, controller) as string | string[] | undefined,
    );
    for (const name of scanner.getAllMethodNames(prototype)) {
      const handler = prototype[name] as (...args: unknown[]) => unknown;
      const methodPath = Reflect.getMetadata(PATH_METADATA, handler) as
        string | string[] | undefined;
      if (methodPath === undefined) {
        continue;
      }
      const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler) as number];
      const targets = [handler, controller];
      const access = {
        handler: `${controller.name}.${name}`,
        isPublic: reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC, targets) ?? false,
        scopes: reflector.getAllAndOverride<Scope[] | undefined>(REQUIRED_SCOPES, targets),
        acceptsTicket:
          reflector.getAllAndOverride<boolean | undefined>(ACCEPTS_TICKET, targets) ?? false,
      };
      for (const base of controllerPaths) {
        for (const path of asList(methodPath)) {
          routes.push({ method, path: joinPath(base, path), ...access });
        }
      }
    }
  }
  // Plain code-unit order, the same in every locale.
  const order = (route: RouteAccess) => `${route.path} ${route.method}`;
  return routes.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
}

/** The access of every controller route, looked up by the router's method and template. */
export class RouteAccessTable {
  private readonly routes = new Map<string, RouteAccess>();

  constructor(routes: readonly RouteAccess[]) {
    for (const route of routes) {
      this.routes.set(`${route.method} ${route.path}`, route);
    }
  }

  /**
   * The route's access, or undefined for a route no controller declares (a plugin's own). A
   * HEAD request is the GET route's (Fastify answers HEAD for every GET route).
   */
  of(method: string, template: string): RouteAccess | undefined {
    return this.routes.get(`${method === 'HEAD' ? 'GET' : method} ${template}`);
  }
}
