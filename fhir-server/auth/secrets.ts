/**
 * Client secrets: generated with 256 bits of randomness, stored only as an scrypt hash (node:crypto), compared in
 * constant time. A secret is shown once, when it is created or rotated, and never logged.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const PARAMS: ScryptOptions = { N: 16384, r: 8, p: 1 };
const KEY_LENGTH = 32;

function derive(secret: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, KEY_LENGTH, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** `scrypt$N$salt$hash`, with the cost stored so that it can be raised later without breaking old hashes. */
export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await derive(secret, salt, PARAMS);
  return `scrypt$${PARAMS.N}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

export async function verifySecret(secret: string, stored: string | null | undefined): Promise<boolean> {
  const parts = stored?.split('$');
  if (!parts || parts.length !== 4 || parts[0] !== 'scrypt' || secret.length > 512) {
    return false;
  }
  const expected = Buffer.from(parts[3], 'base64url');
  const actual = await derive(secret, Buffer.from(parts[2], 'base64url'), { ...PARAMS, N: Number(parts[1]) });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
