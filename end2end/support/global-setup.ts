// Starts two release servers on fresh SQLite files — one signing in with a
// generated Clerk key, one with local accounts — and a fake Creem API.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generateKeys } from './keys';

export const PID_FILE = join(tmpdir(), 'credits-e2e.pid');
export const CREEM_SECRET = 'e2e_creem_secret';
export const STARTER = 'prod_e2e_starter';
export const CLERK_BASE = 'http://127.0.0.1:3123';
export const LOCAL_BASE = 'http://127.0.0.1:3124';
export const CREEM_BASE = 'http://127.0.0.1:3125';

function fakeCreem() {
  const checkouts: unknown[] = [];
  createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      if (request.method === 'POST' && request.url === '/v1/checkouts') {
        const checkout = JSON.parse(body);
        checkouts.push({ apiKey: request.headers['x-api-key'], ...checkout });
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify({ id: 'ch_e2e', checkout_url: `${CREEM_BASE}/pay/${checkout.request_id}` }));
      } else if (request.url === '/checkouts') {
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify(checkouts));
      } else {
        response.setHeader('content-type', 'text/html');
        response.end('<!doctype html><title>Creem checkout</title><h1 data-testid="fake-checkout">Fake Creem checkout</h1>');
      }
    });
  }).listen(3125, '127.0.0.1');
}

async function healthy(base: string) {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error(`${base} did not become healthy`);
}

export default async function globalSetup() {
  const root = resolve(__dirname, '../..');
  const dir = mkdtempSync(join(tmpdir(), 'credits-e2e-'));
  const { publicPem } = generateKeys();
  const config = join(dir, 'credits.toml');
  writeFileSync(config, `[[plans]]\nname = "starter"\ncreem_product_id = "${STARTER}"\n`);
  fakeCreem();
  const common = {
    ...process.env,
    LEPTOS_SITE_ROOT: join(root, 'target/site'),
    CREDITS_CONFIG: config,
    CREEM_WEBHOOK_SECRET: CREEM_SECRET,
    CREEM_API_KEY: 'e2e_key',
    CREEM_API_BASE: CREEM_BASE,
    RUST_LOG: 'warn',
  };
  const servers = [
    ['3123', { CLERK_JWT_KEY: publicPem, CREDITS_ADMIN_USER_IDS: 'user_e2e_admin' }],
    ['3124', {}],
  ] as const;
  const pids: number[] = [];
  for (const [port, extra] of servers) {
    const server = spawn(join(root, 'target/release/credits'), ['serve', '--addr', `127.0.0.1:${port}`], {
      env: { ...common, ...extra, DATABASE_URL: `sqlite://${dir}/e2e-${port}.db` },
      stdio: 'inherit',
      detached: true,
    });
    pids.push(server.pid!);
  }
  writeFileSync(PID_FILE, JSON.stringify(pids));
  await healthy(CLERK_BASE);
  await healthy(LOCAL_BASE);
}
