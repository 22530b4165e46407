// The burr-rs web UI in Debian's Chromium, driven by playwright-core.
//
//   node ui.test.mjs <base url>
//
// against a server with a worker that knows the `batch` and `steps` kinds (see
// tests/tests/ui_browser.rs, which starts one and runs this). Environment:
// BURR_UI_ADMIN_TOKEN and BURR_UI_READ_TOKEN (the server's tokens), BURR_UI_SCREENSHOTS
// (where the screenshots go), BURR_CHROMIUM (default /usr/bin/chromium).
//
// Exits 0 when every check passed; otherwise prints what failed, writes failure.png and
// exits 1.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = (process.argv[2] || '').replace(/\/$/, '');
const readOnlyBase = (process.argv[3] || '').replace(/\/$/, '');
if (!base) {
  console.error('usage: node ui.test.mjs <base url> [<base url of a read-only server of the same database>]');
  process.exit(2);
}
const ADMIN = process.env.BURR_UI_ADMIN_TOKEN || '';
const READ = process.env.BURR_UI_READ_TOKEN || '';
const shots = process.env.BURR_UI_SCREENSHOTS || 'ui-screenshots';
const executablePath = process.env.BURR_CHROMIUM || '/usr/bin/chromium';
mkdirSync(shots, { recursive: true });

const t0 = Date.now();
const log = (text) => console.log(`[ui test +${((Date.now() - t0) / 1000).toFixed(1)}s] ${text}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A call to the API with the admin token: { status, json }. */
async function call(method, path, body, token = ADMIN) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null };
}

async function submit(kind, inputs, extra = {}) {
  const { status, json } = await call('POST', '/v1/runs', { kind, inputs, ...extra });
  assert.equal(status, 201, `submit ${kind}: ${JSON.stringify(json)}`);
  return json.id;
}

/** Poll `check` (async; a truthy result ends it) every `every` ms until `ms` have passed. */
async function until(what, check, ms = 20000, every = 50) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await check();
    if (last) return last;
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

const shot = async (page, name) => {
  await page.screenshot({ path: join(shots, name), fullPage: true });
  log(`screenshot ${join(shots, name)}`);
};

const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1360, height: 860 } });
const page = await context.newPage();
page.setDefaultTimeout(15000);
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));
page.on('console', (msg) => {
  if (msg.type() === 'error' && !/status of 40[134]/.test(msg.text())) log(`browser console: ${msg.text()}`);
});
// Nothing may be fetched from anywhere but the server.
await context.route('**/*', (route) => {
  const url = route.request().url();
  if (url.startsWith(`${base}/`) || (readOnlyBase && url.startsWith(`${readOnlyBase}/`))) return route.continue();
  pageErrors.push(`fetched from elsewhere: ${url}`);
  return route.abort();
});

const byId = (testid) => page.getByTestId(testid);
const row = (id) => page.locator(`[data-testid="run-row"][data-id="${id}"]`);
const go = async (hash) => page.evaluate((h) => { location.hash = h; }, hash);
const runHash = (id) => `#/runs/${encodeURIComponent(id)}`;

let failed = false;
try {
  // ---------------------------------------------------------------- tokens
  log('a 401 asks for a token');
  await page.goto(`${base}/#/`);
  await byId('token-form').waitFor();
  await shot(page, 'token.png');
  await byId('token-input').fill(ADMIN);
  await byId('token-submit').click();
  await byId('runs-table').waitFor();
  await page.evaluate(() => { window.__sameDocument = true; });

  // ---------------------------------------------------------------- (a) the list, live
  log('(a) a run submitted through the API shows up and moves without a reload');
  const batch = await submit('batch', { items: 16, child_ms: 300, flaky: true }, { priority: 3, flow: 'ui-test' });
  await row(batch).waitFor();
  const seenProgress = new Set();
  const seenStatus = new Set();
  await until('the batch to succeed in the list', async () => {
    const snap = await page.evaluate((id) => {
      const tr = document.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
      if (!tr) return null;
      return { status: tr.dataset.status, progress: tr.querySelector('[data-testid="run-progress"]').textContent };
    }, batch);
    if (!snap) return false;
    if (snap.status === 'failed' || snap.status === 'cancelled') {
      const view = await call('GET', `/v1/runs/${encodeURIComponent(batch)}`);
      throw new Error(`the batch ${snap.status}: ${JSON.stringify(view.json.run.error)}`);
    }
    seenStatus.add(snap.status);
    seenProgress.add(snap.progress);
    return snap.status === 'succeeded' && snap.progress === '16/16';
  }, 30000);
  log(`statuses seen: ${[...seenStatus].join(', ')}; progress seen: ${[...seenProgress].join(', ')}`);
  assert.ok(seenStatus.has('running') || seenStatus.has('queued'), `the status never showed the run unfinished: ${[...seenStatus]}`);
  const partial = [...seenProgress].filter((p) => /^\d+\/\d+$/.test(p) && p !== '16/16');
  assert.ok(partial.length >= 2, `the progress did not move through the page: ${[...seenProgress]}`);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was reloaded');
  assert.equal(await row(batch).getByTestId('run-kind').textContent(), 'batch');

  // ---------------------------------------------------------------- (b) the run page
  log('(b) the run page shows steps (with a retried attempt), the child tree, the graph, state and diff');
  await row(batch).getByTestId('run-link').click();
  await page.waitForURL((url) => url.hash === runHash(batch));
  await byId('run-id').waitFor();
  const steps = await until('the five step attempts', async () => {
    const rows = await page.$$eval('[data-testid="step-row"]', (els) => els.map((e) => ({
      seq: Number(e.dataset.seq), action: e.dataset.action, attempt: Number(e.dataset.attempt), status: e.dataset.status, title: e.title,
    })));
    return rows.length >= 5 && rows.every((r) => r.status !== 'running') ? rows : null;
  });
  assert.deepEqual(steps.map((r) => r.action), ['prepare', 'fetch', 'fetch', 'measure_all', 'summarize']);
  const failedFetch = steps.find((r) => r.action === 'fetch' && r.status === 'failed');
  assert.ok(failedFetch, 'the failed first attempt of fetch is not shown');
  assert.equal(failedFetch.attempt, 1);
  assert.match(failedFetch.title, /timed out/, 'the failed attempt does not show its error on hover');
  assert.ok(steps.some((r) => r.action === 'fetch' && r.attempt === 2 && r.status === 'completed'), 'the retry is not shown');
  assert.equal(await page.locator('[data-testid="step-row"][data-status="failed"] [data-testid="step-bar"]').count(), 1);
  assert.equal(await byId('run-status').textContent(), 'succeeded');
  assert.equal(await byId('run-priority').textContent(), '3');
  assert.equal(await byId('run-kind').textContent(), 'batch v1');
  await byId('run-inputs').locator('summary').click();
  assert.match(await byId('run-inputs').locator('pre').textContent(), /"items": 16/);

  // The failed attempt's error on click.
  await page.locator('[data-testid="step-row"][data-status="failed"]').click();
  await assertText(byId('step-error'), /timed out \(first attempt fails on purpose\)/);

  // The child tree: 16 children, all done.
  await until('16 children in the tree', async () => (await page.locator('[data-testid="child-node"]').count()) === 16);
  assert.equal(await byId('tree-progress').locator('.count').textContent(), '16/16');
  assert.equal(await page.locator('[data-testid="child-status"]', { hasText: 'completed' }).count(), 16);

  // The graph, drawn in the page, with the current action highlighted.
  await byId('graph-svg').waitFor();
  for (const action of ['prepare', 'fetch', 'measure_all', 'summarize']) {
    assert.equal(await byId(`graph-node-${action}`).count(), 1, `no graph node ${action}`);
  }
  assert.equal(await byId('graph-node-summarize').getAttribute('data-current'), 'true');
  assert.equal(await byId('graph-node-prepare').getAttribute('data-current'), 'false');
  assert.equal(await byId('graph-edge-fetch-measure_all').count(), 1);
  assert.match(await byId('graph').textContent(), /fetched/, 'the condition label is missing');

  // The tree folds and stays folded across live refreshes.
  await byId('tree-root-progress').click();
  await until('the tree to fold', async () => !(await page.locator('[data-testid="child-node"]').first().isVisible()));
  await byId('tree-root-progress').click();
  await page.locator('[data-testid="child-node"]').first().waitFor({ state: 'visible' });

  // State at a step, with the diff to the previous one.
  const summarize = steps.find((r) => r.action === 'summarize');
  await page.locator(`[data-testid="step-row"][data-action="summarize"]`).click();
  await until('the state after summarize', async () => (await byId('state-title').getAttribute('data-seq')) === String(summarize.seq));
  await byId('diff-added').filter({ hasText: 'total' }).waitFor();
  assert.equal(await page.locator('[data-testid="diff-added"][data-key="total"]').count(), 1);
  assert.equal(await page.locator('[data-testid="diff-changed"][data-key="fetched"]').count(), 1);
  assert.match(await page.locator('[data-testid="diff-changed"][data-key="fetched"]').textContent(), /true.*→.*false/);
  assert.equal(await page.locator('[data-testid="state-row"][data-key="total"]').getAttribute('class'), 'added');
  assert.equal(await page.locator('[data-testid="state-row"][data-key="fetched"]').getAttribute('class'), 'changed');
  assert.equal(await page.locator('[data-testid="state-row"][data-key="items"]').getAttribute('class'), '');
  const total = await page.locator('[data-testid="state-row"][data-key="total"] td').textContent();
  const expected = Array.from({ length: 16 }, (_, i) => `item-${i}-${'x'.repeat(i % 7)}`.length).reduce((a, b) => a + b, 0);
  assert.equal(total, String(expected));
  // Another step: measure_all added the lengths.
  const measure = steps.find((r) => r.action === 'measure_all');
  await page.locator('[data-testid="step-row"][data-action="measure_all"]').click();
  await until('the state after measure_all', async () => (await byId('state-title').getAttribute('data-seq')) === String(measure.seq));
  await page.locator('[data-testid="diff-added"][data-key="lengths"]').waitFor();
  await page.locator(`[data-testid="step-row"][data-action="summarize"]`).click();
  await until('the state after summarize again', async () => (await byId('state-title').getAttribute('data-seq')) === String(summarize.seq));
  await page.locator('[data-testid="diff-added"][data-key="total"]').waitFor();
  await shot(page, 'run.png');

  // ---------------------------------------------------------------- rerun from a step
  log('rerun from a step makes a new run and shows it');
  await page.locator('[data-testid="step-row"][data-action="measure_all"]').click();
  await until('the state after measure_all', async () => (await byId('state-title').getAttribute('data-seq')) === String(measure.seq));
  await assertText(byId('rerun-button'), new RegExp(`from step ${measure.seq}$`));
  await byId('rerun-button').click();
  await page.waitForURL((url) => url.hash.startsWith('#/runs/') && url.hash !== runHash(batch));
  const rerun = decodeURIComponent(new URL(page.url()).hash.slice('#/runs/'.length));
  await until('the rerun to succeed on its page', async () => (await byId('run-status').textContent()) === 'succeeded', 20000);
  const rerunView = await call('GET', `/v1/runs/${encodeURIComponent(rerun)}`);
  assert.equal(rerunView.json.run.fork.run_id, batch);
  assert.equal(rerunView.json.run.fork.sequence_id, measure.seq);
  await byId('run-fork').waitFor();
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was reloaded');

  // ---------------------------------------------------------------- (c) cancel
  log('(c) Cancel from the button stops a running run');
  const long = await submit('batch', { items: 40, child_ms: 1500 });
  await go(runHash(long));
  await byId('run-id').filter({ hasText: long }).waitFor();
  await until('the long run to run and spawn children', async () =>
    (await byId('run-status').textContent()) === 'running' && (await page.locator('[data-testid="child-node"]').count()) > 0, 20000);
  await until('some children to finish', async () => {
    const text = await page.locator('[data-testid="tree-progress"] .count').textContent().catch(() => '0/0');
    return Number(text.split('/')[0]) >= 2;
  }, 20000);
  await shot(page, 'running.png');
  assert.equal(await byId('cancel-button').isEnabled(), true);
  await byId('cancel-button').click();
  await until('the page to show it cancelled', async () => (await byId('run-status').textContent()) === 'cancelled', 20000);
  const cancelled = await call('GET', `/v1/runs/${encodeURIComponent(long)}`);
  assert.equal(cancelled.json.run.status, 'cancelled');
  assert.ok(cancelled.json.run.finished_at_us, 'the cancelled run has no finish time');
  await until('the tree to settle', async () => (await page.locator('[data-testid="child-status"]', { hasText: 'running' }).count()) === 0, 10000);
  assert.equal(await byId('cancel-button').isDisabled(), true);
  await shot(page, 'cancelled.png');

  log('a queued run (not before an hour from now) shows, and cancels at once');
  const later = await submit('batch', { items: 2 }, { not_before_us: Date.now() * 1000 + 3600e6 });
  await go(runHash(later));
  await byId('run-id').filter({ hasText: later }).waitFor();
  await until('the queued run', async () => (await byId('run-status').textContent()) === 'queued');
  await assertText(byId('no-steps'), /Not started yet/);
  await byId('run-not-before').waitFor();
  await shot(page, 'queued.png');
  await byId('cancel-button').click();
  await until('the queued run cancelled', async () => (await byId('run-status').textContent()) === 'cancelled', 10000);
  assert.equal((await call('GET', `/v1/runs/${encodeURIComponent(later)}`)).json.run.status, 'cancelled');

  // ---------------------------------------------------------------- problems shown
  log('a problem (403 with the read-only token) shows in the message area');
  await page.evaluate((t) => localStorage.setItem('burr.token', t), READ);
  await go(runHash(batch));
  await byId('run-id').filter({ hasText: batch }).waitFor();
  await until('the steps', async () => (await page.locator('[data-testid="step-row"]').count()) >= 5);
  await byId('rerun-button').click();
  await assertText(byId('message-text'), /403 .*admin token/);
  await shot(page, 'problem.png');
  await page.evaluate((t) => localStorage.setItem('burr.token', t), ADMIN);

  // ---------------------------------------------------------------- filters and the list's picture
  log('filters, and the list with runs of every status');
  const failing = await submit('steps', { steps: 3, fail_at: 2 });
  const running = await submit('steps', { steps: 200, sleep_ms: 250 }, { priority: 9 });
  await go('#/');
  await row(failing).waitFor();
  await until('the failing run to fail and the long one to run', async () =>
    (await row(failing).getAttribute('data-status')) === 'failed' && (await row(running).getAttribute('data-status')) === 'running', 20000);
  await shot(page, 'list.png');
  await byId('filter-status').selectOption('cancelled');
  await page.waitForURL((url) => url.hash === '#/?status=cancelled');
  await until('only cancelled runs', async () => {
    const statuses = await page.$$eval('[data-testid="run-row"]', (els) => els.map((e) => e.dataset.status));
    return statuses.length === 2 && statuses.every((st) => st === 'cancelled');
  });
  assert.equal(await row(long).count(), 1);
  assert.equal(await row(later).count(), 1);
  await byId('filter-kind').fill('steps');
  await byId('filter-apply').click();
  await byId('runs-empty').waitFor();
  await go('#/?kind=steps');
  await until('the steps runs', async () => (await page.locator('[data-testid="run-row"]').count()) === 2);
  // Pages of two: next and previous.
  await go('#/?limit=2');
  await until('a page of two', async () => (await page.locator('[data-testid="run-row"]').count()) === 2);
  const first = await page.$$eval('[data-testid="run-row"]', (els) => els.map((e) => e.dataset.id));
  await byId('next-page').click();
  await until('the next page', async () => {
    const ids = await page.$$eval('[data-testid="run-row"]', (els) => els.map((e) => e.dataset.id));
    return ids.length === 2 && !ids.some((id) => first.includes(id));
  });
  assert.equal(await byId('page-info').textContent(), 'page 2');
  await byId('prev-page').click();
  await until('the first page again', async () => (await page.$$eval('[data-testid="run-row"]', (els) => els.map((e) => e.dataset.id))).join() === first.join());
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was reloaded');

  // ---------------------------------------------------------------- an application run by hand
  log('an application run by hand (no run queue) shows in the list and on its page');
  await go('#/');
  await row('hand-made-app').waitFor();
  assert.equal(await row('hand-made-app').locator('.source').textContent(), 'app');
  assert.equal(await row('hand-made-app').getAttribute('data-status'), 'completed');
  await row('hand-made-app').getByTestId('run-link').click();
  await until('its four steps', async () => (await page.locator('[data-testid="step-row"]').count()) === 4);
  assert.deepEqual(await page.$$eval('[data-testid="step-row"]', (els) => els.map((e) => e.dataset.action)), ['count', 'count', 'count', 'done']);
  assert.equal(await byId('graph-node-done').getAttribute('data-current'), 'true');
  assert.equal(await byId('graph-edge-count-count').count(), 1, 'the self-loop is not drawn');
  assert.equal(await byId('cancel-button').isDisabled(), true);
  assert.equal(await byId('rerun-button').isDisabled(), true);
  await byId('no-children').waitFor();
  await page.locator('[data-testid="state-row"][data-key="done"]').waitFor();
  await shot(page, 'app.png');

  // ---------------------------------------------------------------- the read-only server
  if (readOnlyBase) {
    log('the read-only server (burr ui) shows the same runs and refuses to act');
    const ro = await context.newPage();
    ro.on('pageerror', (e) => pageErrors.push(String(e)));
    await ro.goto(`${readOnlyBase}/#/runs/${encodeURIComponent(running)}`);
    await ro.getByTestId('run-id').waitFor();
    await until('the run to show running', async () => (await ro.getByTestId('run-status').textContent()) === 'running');
    await ro.getByTestId('cancel-button').click();
    await until('the read-only problem', async () => /403 .*only reads its database/.test((await ro.getByTestId('message-text').first().textContent().catch(() => '')) || ''));
    await ro.screenshot({ path: join(shots, 'read-only.png'), fullPage: true });
    log(`screenshot ${join(shots, 'read-only.png')}`);
    await ro.close();
  }

  const stopped = await call('POST', `/v1/runs/${encodeURIComponent(running)}/cancel`);
  assert.equal(stopped.status, 200);
  assert.deepEqual(pageErrors, [], 'errors in the page');
  log('every check passed');
} catch (error) {
  failed = true;
  console.error(error);
  if (pageErrors.length) console.error('errors in the page:', pageErrors);
  await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
  console.error(`the page at failure: ${join(shots, 'failure.png')} (${page.url()})`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);

async function assertText(locator, pattern) {
  await locator.first().waitFor();
  await until(`text ${pattern}`, async () => pattern.test((await locator.first().textContent()) || ''), 10000);
}
