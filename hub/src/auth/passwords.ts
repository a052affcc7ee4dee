/**
 * Password storage and password policy (docs/security.md#passwords).
 *
 * Storage: scrypt (node:crypto) with N = 2^15, r = 8, p = 1 (32 MiB and ~50-100 ms per hash on one core),
 * a 32-byte key and a 16-byte random salt per password, kept as a PHC-style string
 * `$scrypt$ln=15,r=8,p=1$<salt base64>$<key base64>` so the parameters can be raised later: a login with a
 * hash made with other parameters is rehashed with the current ones. Keys are compared with
 * crypto.timingSafeEqual. scrypt runs on libuv's thread pool, never on the event loop.
 *
 * Policy (NIST SP 800-63B style): at least 12 and at most 256 characters, no composition rules, refused
 * when it is (built on) a common password from the shipped list common-passwords.txt.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  /** Block size. */
  r: number;
  /** Parallelisation. */
  p: number;
  /** Derived key length, bytes. */
  keyLength: number;
  /** Random salt per password, bytes. */
  saltLength: number;
}

export const DEFAULT_SCRYPT: Readonly<ScryptParams> = Object.freeze({
  N: 2 ** 15,
  r: 8,
  p: 1,
  keyLength: 32,
  saltLength: 16,
});

export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 256;

function scryptAsync(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // maxmem: scrypt needs about 128 * N * r bytes; leave room above it.
    const maxmem = 256 * params.N * params.r + 1024 * 1024;
    scrypt(
      password.normalize('NFC'),
      salt,
      params.keyLength,
      { N: params.N, r: params.r, p: params.p, maxmem },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

interface ParsedHash {
  params: ScryptParams;
  salt: Buffer;
  key: Buffer;
}

const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

function parseHash(stored: string): ParsedHash | null {
  const m = PHC.exec(stored);
  if (!m) return null;
  const salt = Buffer.from(m[4]!, 'base64');
  const key = Buffer.from(m[5]!, 'base64');
  const ln = Number(m[1]);
  if (ln < 1 || ln > 24 || key.length < 16) return null;
  return {
    params: { N: 2 ** ln, r: Number(m[2]), p: Number(m[3]), keyLength: key.length, saltLength: salt.length },
    salt,
    key,
  };
}

function formatHash(params: ScryptParams, salt: Buffer, key: Buffer): string {
  const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
  return `$scrypt$ln=${Math.log2(params.N)},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

export class PasswordHasher {
  readonly params: Readonly<ScryptParams>;
  /** A hash of a random password with the current parameters: unknown users are checked against it. */
  private dummy: Promise<string> | null = null;

  constructor(params: Partial<ScryptParams> = {}) {
    const merged = { ...DEFAULT_SCRYPT, ...params };
    if (!Number.isInteger(Math.log2(merged.N)) || merged.N < 2)
      throw new Error(`scrypt N must be a power of two, got ${merged.N}`);
    this.params = Object.freeze(merged);
  }

  async hash(password: string): Promise<string> {
    const salt = randomBytes(this.params.saltLength);
    return formatHash(this.params, salt, await scryptAsync(password, salt, this.params));
  }

  /** True when `password` matches `stored`. A malformed stored hash never matches. */
  async verify(password: string, stored: string): Promise<boolean> {
    const parsed = parseHash(stored);
    if (!parsed) {
      await this.verifyDummy(password);
      return false;
    }
    const key = await scryptAsync(password, parsed.salt, parsed.params);
    return key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
  }

  /** Makes the dummy hash (one scrypt) ahead of the first unknown user, so that one is not slower. */
  prepare(): Promise<string> {
    this.dummy ??= this.hash(randomBytes(16).toString('base64url'));
    return this.dummy;
  }

  /**
   * Costs what verify() of a real user costs, and is always false: an unknown user name (or a disabled
   * account) answers in the same time as a wrong password.
   */
  async verifyDummy(password: string): Promise<false> {
    await this.verify(password, await this.prepare());
    return false;
  }

  /** True when `stored` was made with other parameters than the current ones (rehash at the next login). */
  needsRehash(stored: string): boolean {
    const parsed = parseHash(stored);
    if (!parsed) return true;
    const { N, r, p, keyLength, saltLength } = parsed.params;
    return (
      N !== this.params.N ||
      r !== this.params.r ||
      p !== this.params.p ||
      keyLength !== this.params.keyLength ||
      saltLength !== this.params.saltLength
    );
  }
}

let commonPasswords: Set<string> | null = null;

/** The shipped list (read once; the file sits in src/auth, reached the same way from src/ and dist/). */
export function loadCommonPasswords(): Set<string> {
  if (commonPasswords) return commonPasswords;
  const text = readFileSync(new URL('../../src/auth/common-passwords.txt', import.meta.url), 'utf8');
  commonPasswords = new Set(text.split('\n').filter((line) => line !== '' && !line.startsWith('#')));
  return commonPasswords;
}

// Digits, punctuation and spaces people put before or after a word to pass a length rule.
const AFFIX = /^[\d\s!-/:-@[-`{-~]{0,6}(.*?)[\d\s!-/:-@[-`{-~]{0,6}$/s;

/** The repeated unit when `s` is one string repeated (`abcabcabc` -> `abc`), else null. */
function repeatedUnit(s: string): string | null {
  for (let len = 1; len <= s.length / 2; len++) {
    if (s.length % len !== 0) continue;
    const unit = s.slice(0, len);
    if (unit.repeat(s.length / len) === s) return unit;
  }
  return null;
}

/**
 * Why `password` is refused, or null when it is acceptable. Refused: fewer than 12 or more than 256
 * characters (code points); a common password; a common password (or the user name, or "tendril") with up to
 * six digits, symbols or spaces before or after it, or repeated. Case is ignored. No other composition rules.
 */
export function passwordProblem(password: string, context: { userName?: string } = {}): string | null {
  const length = [...password.normalize('NFC')].length;
  if (length < PASSWORD_MIN_LENGTH)
    return `The password has ${length} characters; use at least ${PASSWORD_MIN_LENGTH} (a few unrelated words make a good one).`;
  if (length > PASSWORD_MAX_LENGTH)
    return `The password has ${length} characters; the most the hub accepts is ${PASSWORD_MAX_LENGTH}.`;
  const list = loadCommonPasswords();
  const lower = password.normalize('NFC').toLowerCase();
  const words = new Set(['tendril']);
  if (context.userName) words.add(context.userName.toLowerCase());
  const known = (s: string) => s.length >= 4 && (list.has(s) || words.has(s));
  const core = AFFIX.exec(lower)?.[1] ?? lower;
  const unit = repeatedUnit(core);
  if (list.has(lower) || known(core) || (unit !== null && (known(unit) || unit.length < 4))) {
    return 'The password is a common password, or built on one (or on the user name) with a few digits or symbols; choose one that is not (a few unrelated words make a good one).';
  }
  return null;
}

/** A generated password for new users and resets: 20 characters of base64url (120 bits). */
export function generatePassword(): string {
  return randomBytes(15).toString('base64url');
}
