import { expect, test } from '@playwright/test';
import { CLERK_BASE, CREEM_BASE, LOCAL_BASE, STARTER } from '../support/global-setup';
import { sessionToken } from '../support/keys';
import { creemWebhook, hydrated, screenshot, watchConsole } from '../support/pages';

test('a local account signs up, spends, checks has_enough, hits a 402, reads history and switches language', async ({ page }) => {
  const problems = watchConsole(page);
  await page.goto(`${LOCAL_BASE}/`);
  await screenshot(page, 'sign-in');
  const form = page.getByTestId('sign-up-form');
  await form.locator('input[name=email]').fill(`e2e_${Date.now()}@example.com`);
  await form.locator('input[name=password]').fill('correct horse battery');
  await form.locator('button[type=submit]').click();
  await expect(page.getByTestId('credits-remaining')).toHaveText('8');
  await hydrated(page);
  await screenshot(page, 'home-local');

  await page.goto(`${LOCAL_BASE}/test-credits`);
  await hydrated(page);
  await page.getByTestId('amount-input').fill('3');
  await page.getByTestId('deduct-credits').click();
  await expect(page.getByTestId('credits-remaining')).toHaveText('5');
  await page.getByTestId('amount-input').fill('5');
  await page.getByTestId('has-enough').click();
  await expect(page.getByTestId('has-enough-result')).toHaveText('true');
  await page.getByTestId('amount-input').fill('6');
  await page.getByTestId('has-enough').click();
  await expect(page.getByTestId('has-enough-result')).toHaveText('false');
  await page.getByTestId('amount-input').fill('10');
  await page.getByTestId('deduct-credits').click();
  await expect(page.getByTestId('credits-error')).toContainText('5 more credits needed');
  await expect(page.getByTestId('credits-remaining')).toHaveText('5');
  await expect(page.getByTestId('add-credits')).toHaveCount(0);
  await screenshot(page, 'test-credits');

  await page.goto(`${LOCAL_BASE}/history`);
  await expect(page.getByTestId('history-row')).toHaveCount(2);
  await hydrated(page);
  await screenshot(page, 'history');
  await page.getByTestId('language-switch').click();
  await expect(page.locator('nav')).toContainText('明细');
  await page.reload();
  await expect(page.locator('nav')).toContainText('明细');
  await screenshot(page, 'history-zh');
  expect(problems).toEqual([]);
});

test('buying goes to Creem, the signed webhook updates the balance live, and a video spends 10', async ({ page, context }) => {
  const problems = watchConsole(page);
  const user = `user_buyer_${Date.now()}`;
  await context.addCookies([{ name: '__session', value: sessionToken(user), url: CLERK_BASE }]);
  await page.goto(`${CLERK_BASE}/`);
  await hydrated(page);
  await expect(page.getByTestId('credits-remaining')).toHaveText('8');
  await page.getByTestId('buy-starter').click();
  await expect(page.getByTestId('fake-checkout')).toBeVisible();
  const checkouts = (await (await fetch(`${CREEM_BASE}/checkouts`)).json()) as any[];
  const mine = checkouts.find((checkout) => checkout.metadata.userId === user);
  expect(mine.product_id).toBe(STARTER);
  expect(mine.apiKey).toBe('e2e_key');

  await page.goto(`${CLERK_BASE}/`);
  await hydrated(page);
  await expect(page.getByTestId('credits-remaining')).toHaveText('8');
  await page.waitForTimeout(300);
  const order = `ord_${Date.now()}`;
  await creemWebhook(CLERK_BASE, {
    id: `evt_${Date.now()}`, eventType: 'checkout.completed', created_at: Date.now(),
    object: {
      id: 'ch_e2e', object: 'checkout', request_id: mine.request_id,
      order: { id: order, product: STARTER, amount: 990, currency: 'USD', type: 'onetime' },
      customer: { email: 'buyer@example.com' }, metadata: { userId: user },
    },
  });
  await expect(page.getByTestId('credits-remaining')).toHaveText('123');
  await expect(page.getByTestId('credits-bonus')).toHaveText('115');

  await page.getByTestId('generate-video').click();
  await expect(page.getByTestId('video-result')).toBeVisible();
  await expect(page.getByTestId('credits-remaining')).toHaveText('113');
  await expect(page.getByTestId('credits-used')).toHaveText('10');
  await screenshot(page, 'home-clerk');
  expect(problems).toEqual([]);
});

test('an admin adjusts a user and draws the daily chart', async ({ page, context }) => {
  const problems = watchConsole(page);
  const user = `user_target_${Date.now()}`;
  await fetch(`${CLERK_BASE}/api/credits`, { headers: { authorization: `Bearer ${sessionToken(user)}` } });
  await context.addCookies([{ name: '__session', value: sessionToken('user_e2e_admin'), url: CLERK_BASE }]);
  await page.goto(`${CLERK_BASE}/admin`);
  await hydrated(page);
  await page.getByTestId('admin-search').fill(user);
  await page.getByTestId('admin-user').first().click();
  await expect(page.getByTestId('admin-user-detail')).toContainText(user);
  await expect(page.getByTestId('admin-remaining')).toContainText('8');
  await page.getByTestId('admin-action').selectOption('add');
  await page.getByTestId('admin-amount').fill('5');
  await page.getByTestId('admin-reason').fill('e2e goodwill');
  await page.getByTestId('admin-apply').click();
  await expect(page.getByTestId('admin-remaining')).toContainText('13');
  const today = new Date().toISOString().slice(0, 10);
  await page.getByTestId('stats-from').fill(today);
  await page.getByTestId('stats-to').fill(today);
  await expect(page.locator('[data-testid=stats-chart] rect').first()).toBeAttached();
  await page.getByTestId('batch-file').setInputFiles({
    name: 'adjust.csv', mimeType: 'text/csv',
    buffer: Buffer.from(`userId,action,amount,reason\n${user},add,7,e2e batch\nnobody,add,1,typo\n`),
  });
  await expect(page.getByTestId('batch-input')).toHaveValue(/e2e batch/);
  await page.getByTestId('batch-apply').click();
  await expect(page.getByTestId('batch-result')).toContainText(`#1 ${user} ok`);
  await expect(page.getByTestId('batch-result')).toContainText('#2 nobody');
  await page.getByTestId('run-check').click();
  await expect(page.getByTestId('check-result')).toContainText('ok: true');
  await screenshot(page, 'admin');

  // The test page's admin tools: a signed test webhook and the Creem self-test.
  await page.goto(`${CLERK_BASE}/test-credits`);
  await hydrated(page);
  await expect(page.getByTestId('credits-remaining')).toHaveText('8');
  await page.getByTestId('test-webhook-starter').click();
  await expect(page.getByTestId('action-log')).toContainText('webhook starter → credited 115');
  await expect(page.getByTestId('credits-remaining')).toHaveText('123');
  await page.getByTestId('test-creem').click();
  await expect(page.getByTestId('action-log')).toContainText('test-creem →');
  await screenshot(page, 'test-credits-admin');
  expect(problems).toEqual([]);
});

test('the pages fit a phone', async ({ page, context }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await context.addCookies([{ name: '__session', value: sessionToken(`user_phone_${Date.now()}`), url: CLERK_BASE }]);
  for (const [path, name] of [['/', 'phone-home'], ['/history', 'phone-history'], ['/test-credits', 'phone-test']]) {
    await page.goto(`${CLERK_BASE}${path}`);
    await hydrated(page);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await screenshot(page, name);
  }
});

test('without JavaScript the server-rendered forms still sign up and show the balance', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`${LOCAL_BASE}/`);
  const form = page.getByTestId('sign-up-form');
  await form.locator('input[name=email]').fill(`nojs_${Date.now()}@example.com`);
  await form.locator('input[name=password]').fill('correct horse battery');
  await form.locator('button[type=submit]').click();
  await expect(page.getByTestId('credits-remaining')).toHaveText('8');
  await context.close();
});

test('a refresh retries network failures with backoff and recovers', async ({ page, context }) => {
  await context.addCookies([{ name: '__session', value: sessionToken(`user_retry_${Date.now()}`), url: CLERK_BASE }]);
  await page.goto(`${CLERK_BASE}/test-credits`);
  await hydrated(page);
  await expect(page.getByTestId('credits-remaining')).toHaveText('8');
  let failures = 0;
  await page.route('**/api/credits', (route) => {
    if (route.request().method() === 'GET' && failures < 2) {
      failures += 1;
      return route.abort('connectionreset');
    }
    return route.continue();
  });
  await page.getByTestId('refresh-credits').click();
  await expect(page.getByTestId('credits-error')).toContainText('Network problem');
  await expect(page.getByTestId('credits-error')).toHaveCount(0, { timeout: 10_000 });
  expect(failures).toBe(2);
  await expect(page.getByTestId('credits-remaining')).toHaveText('8');
});
