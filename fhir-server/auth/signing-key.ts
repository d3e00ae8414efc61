/**
 * The key that signs access tokens. It lives in the database so that every worker process (and every restart)
 * signs and verifies with the same key: a token from one worker is good on another. The first process to need it
 * creates it under an advisory lock; the others read it.
 */
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Database } from '../db';

export const TOKEN_ALGORITHM = 'ES256';
/** Arbitrary constant naming "create the token signing key" among advisory locks. */
const SIGNING_KEY_LOCK = 7_202_611_251;

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

async function toSigningKey(kid: string, privateJwkText: string): Promise<SigningKey> {
  const privateJwk = JSON.parse(privateJwkText) as JWK;
  const { d: _private, ...publicJwk } = privateJwk;
  return {
    kid,
    privateKey: (await importJWK(privateJwk, TOKEN_ALGORITHM)) as CryptoKey,
    publicKey: (await importJWK(publicJwk, TOKEN_ALGORITHM)) as CryptoKey,
    publicJwk: { ...publicJwk, kid, alg: TOKEN_ALGORITHM, use: 'sig' },
  };
}

export async function loadOrCreateSigningKey(db: Database): Promise<SigningKey> {
  const latest = 'SELECT kid, private_jwk FROM auth_signing_key ORDER BY created_at DESC, kid LIMIT 1';
  const existing = await db.query<{ kid: string; private_jwk: string }>(latest);
  if (existing.length > 0) {
    return toSigningKey(existing[0].kid, existing[0].private_jwk);
  }
  const row = await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [SIGNING_KEY_LOCK]);
    const again = await tx.query<{ kid: string; private_jwk: string }>(latest);
    if (again.length > 0) {
      return again[0];
    }
    const { privateKey } = await generateKeyPair(TOKEN_ALGORITHM, { extractable: true });
    const kid = randomUUID();
    const private_jwk = JSON.stringify(await exportJWK(privateKey));
    await tx.query('INSERT INTO auth_signing_key (kid, private_jwk) VALUES ($1, $2)', [kid, private_jwk]);
    return { kid, private_jwk };
  });
  return toSigningKey(row.kid, row.private_jwk);
}
