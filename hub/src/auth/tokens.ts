/**
 * API tokens for programs (docs/security.md#api-tokens): `tdl_` followed by 32 random bytes in base64url
 * (47 characters; the prefix lets secret scanners find leaked ones). Shown once; the database keeps the
 * SHA-256 (enough for 256-bit random secrets), looked up by it. A token has a role up to its creator's, an
 * optional expiry, and its last use (time and client address, written at most once a minute).
 * Revoking deletes the row: the next request with the token fails.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { HubHttpError } from '../errors.js';
import type { SqliteDatabase } from '../storage/sqlite.js';
import { sha256 } from './sessions.js';
import type { Role } from './types.js';

export const TOKEN_PREFIX = 'tdl_';
const TOKEN_SHAPE = /^tdl_[A-Za-z0-9_-]{43}$/;
const LAST_USE_STEP_MS = 60_000;
/** API tokens one owner may have; creating more is refused until some are revoked. */
export const MAX_TOKENS_PER_OWNER = 100;

export interface TokenRecord {
  id: string;
  name: string;
  role: Role;
  /** The user the token acts for; null for a token made with the bootstrap admin token. */
  owner: string | null;
  createdBy: string;
  createdAt: number;
  expiresAt: number | null;
  lastUsedAt: number | null;
  lastUsedFrom: string | null;
}

interface TokenRow {
  id: string;
  name: string;
  role: string;
  owner: string | null;
  created_by: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  last_used_from: string | null;
}

function fromRow(row: TokenRow): TokenRecord {
  return {
    id: row.id,
    name: row.name,
    role: row.role as Role,
    owner: row.owner,
    createdBy: row.created_by,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    lastUsedAt: row.last_used_at,
    lastUsedFrom: row.last_used_from,
  };
}

export function looksLikeApiToken(text: string): boolean {
  return text.startsWith(TOKEN_PREFIX);
}

export class TokenStore {
  private readonly stmt;

  constructor(
    db: SqliteDatabase,
    private readonly clock: Clock,
  ) {
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO auth_tokens (id, name, secret_hash, role, owner, created_by, created_at, expires_at)
         VALUES (@id, @name, @hash, @role, @owner, @createdBy, @now, @expiresAt)`,
      ),
      byHash: db.prepare(`SELECT * FROM auth_tokens WHERE secret_hash = ?`),
      byId: db.prepare(`SELECT * FROM auth_tokens WHERE id = ?`),
      used: db.prepare(`UPDATE auth_tokens SET last_used_at = ?, last_used_from = ? WHERE id = ?`),
      remove: db.prepare(`DELETE FROM auth_tokens WHERE id = ?`),
      ofOwner: db.prepare(`SELECT * FROM auth_tokens WHERE owner IS ? ORDER BY created_at DESC`),
      all: db.prepare(`SELECT * FROM auth_tokens ORDER BY created_at DESC`),
      countOf: db.prepare(`SELECT count(*) FROM auth_tokens WHERE owner IS ?`).pluck(),
    };
  }

  /** Makes a token; `token` is the secret, to be shown once. */
  create(input: { name: string; role: Role; owner: string | null; createdBy: string; expiresAt: number | null }): {
    token: string;
    record: TokenRecord;
  } {
    if ((this.stmt.countOf.get(input.owner) as number) >= MAX_TOKENS_PER_OWNER) {
      throw new HubHttpError(
        'INVALID_REQUEST',
        `${input.owner ?? 'The admin token'} already has ${MAX_TOKENS_PER_OWNER} API tokens, the most allowed; revoke unused ones (DELETE /api/v1/tokens/:id) first.`,
      );
    }
    const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const id = randomBytes(9).toString('base64url');
    this.stmt.insert.run({ ...input, id, hash: sha256(token), now: this.clock.now() });
    return { token, record: this.get(id)! };
  }

  get(id: string): TokenRecord | undefined {
    const row = this.stmt.byId.get(id) as TokenRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** The token of a presented secret, if it exists and has not expired. */
  lookup(secret: string): TokenRecord | null {
    if (!TOKEN_SHAPE.test(secret)) return null;
    const row = this.stmt.byHash.get(sha256(secret)) as TokenRow | undefined;
    if (!row) return null;
    const record = fromRow(row);
    if (record.expiresAt !== null && this.clock.now() >= record.expiresAt) return null;
    return record;
  }

  /** Records a use (written when the last recorded use is a minute old or from another address). */
  markUsed(record: TokenRecord, client: string): void {
    const now = this.clock.now();
    if (record.lastUsedAt === null || now - record.lastUsedAt >= LAST_USE_STEP_MS || record.lastUsedFrom !== client) {
      this.stmt.used.run(now, client, record.id);
      record.lastUsedAt = now;
      record.lastUsedFrom = client;
    }
  }

  revoke(id: string): boolean {
    return this.stmt.remove.run(id).changes > 0;
  }

  /** Tokens of one owner (null: those made by the bootstrap token), or every token. */
  list(owner?: string | null): TokenRecord[] {
    const rows = (owner === undefined ? this.stmt.all.all() : this.stmt.ofOwner.all(owner)) as TokenRow[];
    return rows.map(fromRow);
  }
}
