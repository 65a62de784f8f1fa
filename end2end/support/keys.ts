// Clerk-style session tokens signed with a key the test run generates.
import { createSign, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const KEY_FILE = join(tmpdir(), 'credits-e2e-key.json');

export function generateKeys(): { publicPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  writeFileSync(KEY_FILE, JSON.stringify({ publicPem, privatePem }));
  return { publicPem };
}

const b64url = (data: string | Buffer) => Buffer.from(data).toString('base64url');

export function sessionToken(sub: string, claims: Record<string, unknown> = {}): string {
  const { privatePem } = JSON.parse(readFileSync(KEY_FILE, 'utf8'));
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify({ sub, iat: now, nbf: now, exp: now + 600, ...claims }));
  const signer = createSign('RSA-SHA256');
  signer.update(`${header}.${payload}`);
  return `${header}.${payload}.${b64url(signer.sign(privatePem))}`;
}
