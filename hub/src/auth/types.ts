/**
 * Who is calling and what they may do (docs/security.md). Every route declares the role it needs in
 * `config.role`; the auth plugin resolves the caller into `request.principal` and enforces the role.
 */

/** Roles of users and API tokens, lowest first. `public` is only a route requirement: anyone, even anonymous. */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];
export type RouteRole = 'public' | Role;
export const ROUTE_ROLES: readonly RouteRole[] = ['public', ...ROLES];

const RANK: Record<RouteRole, number> = { public: 0, viewer: 1, operator: 2, admin: 3 };

/** True when `have` is at least `need`. */
export function roleAtLeast(have: Role, need: RouteRole): boolean {
  return RANK[have] >= RANK[need];
}

/** The lower of two roles. */
export function lowerRole(a: Role, b: Role): Role {
  return RANK[a] <= RANK[b] ? a : b;
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

export function isRouteRole(value: unknown): value is RouteRole {
  return typeof value === 'string' && (ROUTE_ROLES as readonly string[]).includes(value);
}

/**
 * The authenticated caller of a request.
 * - `user`: a browser session (cookie); `name` is the user name.
 * - `token`: an API token; `name` is the token's owner (user name), or `token:<token name>` for a token the
 *   bootstrap admin token created; `role` is the lower of the token's role and its owner's current role.
 * - `bootstrap`: the hub's admin token (HUB_ADMIN_TOKEN or the generated admin-token file), `name` `admin-token`.
 */
export interface Principal {
  kind: 'user' | 'token' | 'bootstrap';
  name: string;
  role: Role;
  /** Session id (kind `user`): the public id shown by GET /api/v1/sessions, not the cookie secret. */
  sessionId?: string;
  /** API token id and name (kind `token`). */
  tokenId?: string;
  tokenName?: string;
  /** The user must change their password before anything else (kind `user`). */
  mustChangePassword?: boolean;
}

/** What `principal` looks like in answers and audit entries: no secrets, no internals. */
export function describePrincipal(p: Principal): { kind: Principal['kind']; name: string; role: Role } {
  return { kind: p.kind, name: p.name, role: p.role };
}

/** A label for logs and the audit log: `alice`, `alice (token ci-deploy)`, `admin-token`. */
export function actorLabel(p: Principal): string {
  return p.kind === 'token' && p.tokenName !== undefined ? `${p.name} (token ${p.tokenName})` : p.name;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The role a route needs; every route must declare one (the auth plugin refuses a route without it). */
    role?: RouteRole;
    /** The route stays open to a user who must change their password first (GET /me, logout, own PATCH). */
    passwordChangeAllowed?: boolean;
  }
  interface FastifyRequest {
    /** The authenticated caller, or null (anonymous, on a public route). */
    principal: Principal | null;
  }
}
