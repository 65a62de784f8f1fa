import { readFileSync } from 'node:fs';
import { PID_FILE } from './global-setup';

export default async function globalTeardown() {
  for (const pid of JSON.parse(readFileSync(PID_FILE, 'utf8')) as number[]) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  process.exit(0);
}
