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
