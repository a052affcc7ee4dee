/** What users and API tokens look like in answers (docs/api.md#users-sessions-and-tokens): no secrets. */
import type { TokenRecord } from './tokens.js';
import type { UserRecord } from './users.js';

export function userView(u: UserRecord) {
  return {
    name: u.name,
    role: u.role,
    disabled: u.disabled,
    mustChangePassword: u.mustChangePassword,
    createdAt: u.createdAt,
    passwordChangedAt: u.passwordChangedAt,
    lastLoginAt: u.lastLoginAt,
  };
}

export function tokenView(t: TokenRecord) {
  return {
    id: t.id,
    name: t.name,
    role: t.role,
    owner: t.owner,
    createdBy: t.createdBy,
    createdAt: t.createdAt,
    expiresAt: t.expiresAt,
    lastUsedAt: t.lastUsedAt,
    lastUsedFrom: t.lastUsedFrom,
  };
}
