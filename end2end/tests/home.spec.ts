import { expect, test } from '@playwright/test';
import { sessionToken } from '../support/keys';
import { hydrated, watchConsole } from '../support/pages';

test('the home page shows the signed-in balance and hydrates without console errors', async ({ page, context }) => {
  const problems = watchConsole(page);
  const user = `user_e2e_${Date.now()}`;
  await context.addCookies([{ name: '__session', value: sessionToken(user), url: 'http://127.0.0.1:3123' }]);
  const wasm = page.waitForResponse((response) => response.url().endsWith('/pkg/credits.wasm'));
  await page.goto('/');
  expect((await wasm).status()).toBe(200);
  await hydrated(page);
  await expect(page).toHaveTitle('Credits');
  // The stylesheet is applied (the page is not unstyled HTML).
  expect(await page.evaluate(() => document.styleSheets.length)).toBeGreaterThan(0);
  await expect(page.getByTestId('credits-remaining')).toHaveText('8');
  await expect(page.getByTestId('credits-total')).toHaveText('8');
  await expect(page.getByTestId('credits-initial')).toHaveText('8');
  await page.waitForTimeout(500);
  expect(problems).toEqual([]);
});

test('without a session the page says why instead of a balance', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByTestId('credits-error')).toContainText('session');
  await expect(page.getByTestId('sign-in-form')).toHaveCount(0); // Clerk is configured: no local forms
});

test('the other pages load their own code only when visited, by link and by address', async ({ page, context }) => {
  const problems = watchConsole(page);
  const user = `user_e2e_lazy_${Date.now()}`;
  await context.addCookies([{ name: '__session', value: sessionToken(user), url: 'http://127.0.0.1:3123' }]);
  const wasm: string[] = [];
  page.on('response', (response) => {
    if (response.url().endsWith('.wasm')) wasm.push(new URL(response.url()).pathname);
  });
  await page.goto('/');
  await hydrated(page);
  await expect(page.getByTestId('credits-remaining')).toHaveText('8');
  // The first load of / is the main module alone.
  expect(wasm).toEqual(['/pkg/credits.wasm']);
  // A client-side navigation fetches the page's chunk and the page works.
  await page.locator('header a[href="/test-credits"]').click();
  await expect(page).toHaveURL(/\/test-credits$/);
  await page.getByTestId('amount-input').fill('1');
  await page.getByTestId('deduct-credits').click();
  await expect(page.getByTestId('credits-remaining')).toHaveText('7');
  expect(wasm.length).toBeGreaterThan(1);
  await page.locator('header a[href="/history"]').click();
  await expect(page).toHaveURL(/\/history$/);
  await expect(page.getByTestId('history-row')).toHaveCount(2);
  // Loading a lazy page by its address hydrates it too.
  await page.goto('/test-credits');
  await hydrated(page);
  await page.getByTestId('amount-input').fill('1');
  await page.getByTestId('deduct-credits').click();
  await expect(page.getByTestId('credits-remaining')).toHaveText('6');
  await page.waitForTimeout(300);
  expect(problems).toEqual([]);
});
