import { createHmac } from 'node:crypto';
import { expect, Page } from '@playwright/test';
import { CREEM_SECRET } from './global-setup';

/** Collects console errors and warnings (hydration problems show up there).
 * The browser's own log line for a deliberately refused spend (402) is expected. */
export function watchConsole(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (message) => {
    const text = message.text();
    if (text.includes('status of 402 (Payment Required)')) return;
    if (message.type() === 'error' || message.type() === 'warning') problems.push(text);
  });
  page.on('pageerror', (error) => problems.push(error.message));
  return problems;
}

export async function hydrated(page: Page) {
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
}

export async function screenshot(page: Page, name: string) {
  await page.screenshot({ path: `test-results/screens/${name}.png`, fullPage: true });
}

/** Posts a Creem webhook signed the way Creem signs it. */
export async function creemWebhook(base: string, event: unknown) {
  const body = JSON.stringify(event);
  const signature = createHmac('sha256', CREEM_SECRET).update(body).digest('hex');
  const response = await fetch(`${base}/api/webhooks/creem`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'creem-signature': signature },
    body,
  });
  expect(response.status).toBe(200);
}
