import { expect, Page, test } from '@playwright/test';
import { sessionToken } from '../support/keys';
import { hydrated, watchConsole } from '../support/pages';
import { LOCAL_BASE } from '../support/global-setup';

/** Records every Content-Security-Policy violation the page reports, from
 * before its first script runs (init scripts are exempt from the policy). */
async function recordViolations(page: Page) {
  await page.addInitScript(() => {
    (window as any).__violations = [];
    document.addEventListener('securitypolicyviolation', (event) => {
      (window as any).__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
    });
  });
}

async function violations(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as any).__violations);
}

test('pages hydrate under their Content-Security-Policy with no violation', async ({ page, context }) => {
  const problems = watchConsole(page);
  await recordViolations(page);
  const user = `user_e2e_csp_${Date.now()}`;
  await context.addCookies([{ name: '__session', value: sessionToken(user), url: 'http://127.0.0.1:3123' }]);
  const response = await page.goto('/');
  const policy = response!.headers()['content-security-policy'];
  expect(policy).toContain("'nonce-");
  expect(policy).toContain("frame-ancestors 'none'");
  expect(policy).not.toContain('unsafe-inline');
  expect(response!.headers()['x-content-type-options']).toBe('nosniff');
  await hydrated(page);
  await expect(page.getByTestId('credits-remaining')).toHaveText('8');
  // A lazily loaded page's code arrives under the same policy.
  await page.locator('header a[href="/history"]').click();
  await expect(page).toHaveURL(/\/history$/);
  await page.waitForTimeout(300);
  expect(await violations(page)).toEqual([]);
  expect(problems).toEqual([]);
});

test('the local sign-in forms work under the policy', async ({ page }) => {
  const problems = watchConsole(page);
  await recordViolations(page);
  await page.goto(`${LOCAL_BASE}/`);
  await hydrated(page);
  expect(await violations(page)).toEqual([]);
  // The form posts to this site (form-action 'self') and the answer leads back here.
  const form = page.getByTestId('sign-up-form');
  await form.locator('input[name=email]').fill(`csp_${Date.now()}@example.com`);
  await form.locator('input[name=password]').fill('correct horse battery');
  await form.locator('button[type=submit]').click();
  await expect(page.getByTestId('credits-remaining')).toHaveText('8');
  await hydrated(page);
  expect(await violations(page)).toEqual([]);
  expect(problems).toEqual([]);
});
