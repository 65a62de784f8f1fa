import { readFileSync } from 'node:fs';
import { PID_FILE } from './global-setup';

export default async function globalTeardown() {
  const pid = Number(readFileSync(PID_FILE, 'utf8'));
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // already gone
  }
}
