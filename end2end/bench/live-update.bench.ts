import { test } from '@playwright/test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLERK_BASE, STARTER } from '../support/global-setup';
import { sessionToken } from '../support/keys';
import { creemWebhook, hydrated } from '../support/pages';

// From the webhook's 200 to the new balance painted in Chromium: the page marks
// the first animation frame after `credits-remaining` shows the new figure.
test('live update latency: webhook 200 to painted balance', async ({ page, context }) => {
  const user = `user_live_bench_${Date.now()}`;
  await context.addCookies([{ name: '__session', value: sessionToken(user), url: CLERK_BASE }]);
  await page.goto(`${CLERK_BASE}/`);
  await hydrated(page);
  await page.waitForTimeout(500); // the event stream is open
  const samples: number[] = [];
  for (let i = 1; i <= 30; i++) {
    const expected = String(8 + 115 * i);
    await page.evaluate((expected) => {
      const w = window as any;
      w.__painted = undefined;
      const target = document.querySelector('[data-testid="credits-remaining"]')!;
      const observer = new MutationObserver(() => {
        if (target.textContent?.replace(/\D/g, '') === expected) {
          observer.disconnect();
          requestAnimationFrame(() => { w.__painted = performance.timeOrigin + performance.now(); });
        }
      });
      observer.observe(target, { childList: true, characterData: true, subtree: true });
    }, expected);
    const stamp = `${Date.now()}_${i}`;
    await creemWebhook(CLERK_BASE, {
      id: `evt_live_${stamp}`, eventType: 'checkout.completed', created_at: Date.now(),
      object: {
        id: `ch_live_${stamp}`, object: 'checkout', request_id: `req_live_${stamp}`,
        order: { id: `ord_live_${stamp}`, product: STARTER, amount: 990, currency: 'USD', type: 'onetime' },
        customer: { email: `${user}@example.com` }, metadata: { userId: user },
      },
    });
    const acknowledged = Date.now();
    await page.waitForFunction(() => (window as any).__painted !== undefined, null, { timeout: 10_000 });
    const painted = await page.evaluate(() => (window as any).__painted as number);
    samples.push(Math.max(0, painted - acknowledged));
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
  const result = { samples: samples.length, p50_ms: at(0.5), p95_ms: at(0.95), max_ms: sorted[sorted.length - 1], all_ms: samples };
  const dir = join(__dirname, '..', '..', 'target', 'bench');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'live-update.json'), JSON.stringify(result, null, 2));
  console.log(JSON.stringify(result));
});
