/**
 * Who is logged in (docs/api.md: POST/DELETE /api/v1/session, GET /api/v1/me, PATCH /api/v1/users/:name).
 * The session itself is an HttpOnly cookie the page never sees; this only knows the user and role.
 */
import type { Role, User } from '../types.js';

export interface SessionApi {
  me(): Promise<{ user: User | null; principal?: { name: string; role: Role } } | User>;
  login(username: string, password: string): Promise<{ user: User }>;
  logout(): Promise<unknown>;
  changePassword(name: string, currentPassword: string, password: string): Promise<unknown>;
}

export type SessionStatus = 'unknown' | 'anonymous' | 'authenticated';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export class SessionState {
  user: User | null = $state(null);
  status: SessionStatus = $state('unknown');
  /** Why the user was sent to the login page (expired session), for the login form to say. */
  notice: string | null = $state(null);

  canOperate = $derived(this.user !== null && RANK[this.user.role] >= RANK.operator);
  mustChangePassword = $derived(this.user?.mustChangePassword === true);

  constructor(private readonly api: SessionApi) {}

  async init(): Promise<void> {
    try {
      const me = await this.api.me();
      if (!('user' in me)) this.user = me;
      // A token principal (no user behind it) still has a name and a role.
      else
        this.user =
          me.user ??
          (me.principal ? { name: me.principal.name, role: me.principal.role, mustChangePassword: false } : null);
      this.status = this.user ? 'authenticated' : 'anonymous';
    } catch {
      this.user = null;
      this.status = 'anonymous';
    }
  }

  async login(username: string, password: string): Promise<void> {
    const { user } = await this.api.login(username, password);
    this.user = user;
    this.status = 'authenticated';
    this.notice = null;
  }

  async changePassword(currentPassword: string, password: string): Promise<void> {
    if (!this.user) throw new Error('not logged in');
    await this.api.changePassword(this.user.name, currentPassword, password);
    this.user = { ...this.user, mustChangePassword: false };
  }

  async logout(): Promise<void> {
    try {
      await this.api.logout();
    } finally {
      this.user = null;
      this.status = 'anonymous';
    }
  }

  /** The hub no longer accepts the session (401 from the API, or the live channel refused it). */
  expired(): void {
    if (this.status !== 'authenticated') return;
    this.user = null;
    this.status = 'anonymous';
    this.notice = 'Your session ended; log in again.';
  }
}
