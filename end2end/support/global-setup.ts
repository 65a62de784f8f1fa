// Starts the release build on a fresh SQLite file with a generated Clerk key.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generateKeys } from './keys';

export const PID_FILE = join(tmpdir(), 'credits-e2e.pid');

export default async function globalSetup() {
  const root = resolve(__dirname, '../..');
  const dir = mkdtempSync(join(tmpdir(), 'credits-e2e-'));
  const { publicPem } = generateKeys();
  const server = spawn(join(root, 'target/release/credits'), ['serve', '--addr', '127.0.0.1:3123'], {
    env: {
      ...process.env,
      DATABASE_URL: `sqlite://${dir}/e2e.db`,
      LEPTOS_SITE_ROOT: join(root, 'target/site'),
      CLERK_JWT_KEY: publicPem,
      CREDITS_ADMIN_USER_IDS: 'user_e2e_admin',
      RUST_LOG: 'warn',
    },
    stdio: 'inherit',
    detached: true,
  });
  writeFileSync(PID_FILE, String(server.pid));
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch('http://127.0.0.1:3123/healthz')).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error('the credits server did not become healthy');
}
