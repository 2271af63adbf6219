// auth.test.mjs - the dashboard against a hopper with bearer tokens
// (--auth-file): a 401 shows the token prompt; a wrong token says so; a
// token without an admin scope sees no admin buttons, one with admin:*
// sees them; the token is kept in sessionStorage only.
//   node auth.test.mjs HOPPER_BIN OUT_DIR
// Exits 77 (ctest: skipped) when `hopper --help` does not mention
// --auth-file, 0 when every check passed, 1 otherwise.
import {execFileSync} from 'node:child_process';
import {createHash} from 'node:crypto';
import {writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {assert, Checks, http, openPage, sleep, startHopper, status, stopChecked} from './lib.mjs';

const [bin, outDir = '.'] = process.argv.slice(2);
if (!bin) {
    console.error('usage: node auth.test.mjs HOPPER_BIN [OUT_DIR]');
    process.exit(2);
}
let help = '';
try {
    help = execFileSync(bin, ['--help'], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']});
} catch (e) {
    help = String(e.stdout || '') + String(e.stderr || '');
}
if (!help.includes('--auth-file')) {
    console.log('ui auth: skipped: this hopper has no --auth-file');
    process.exit(77);
}

const ADMIN = 'admin-token-0123456789';
const READER = 'reader-token-0123456789';
const sha = t => createHash('sha256').update(t).digest('hex');
const authFile = join(outDir, 'ui_auth_tokens');
writeFileSync(authFile, `${sha(ADMIN)} admin:* send:* receive:* metrics\n` +
                        `${sha(READER)} metrics receive:*\n`, {mode: 0o600});

const checks = new Checks('ui auth');
const server = await startHopper(bin, ['--auth-file', authFile]);
const {origin} = server;
const sent = await http(origin, 'POST', '/channels/jobs',
                        {body: 'one', headers: {'Content-Type': 'text/plain', Authorization: 'Bearer ' + ADMIN}});
const {browser, page, problems} = await openPage(origin);
const hidden = sel => page.$eval(sel, e => e.hidden || getComputedStyle(e).display === 'none');

async function enterToken(token)
{
    await page.$eval('#token', e => { e.value = ''; });
    await page.type('#token', token);
    await page.click('#auth-form button[type="submit"]');
}

await checks.run('the admin token can send (the server takes tokens)', async () => {
    assert(sent.status === 202, 'POST with the admin token: ' + sent.status);
});

await page.goto(origin + '/', {waitUntil: 'load'});

await checks.run('a 401 shows the token prompt, a form field', async () => {
    await page.waitForFunction(() => !document.querySelector('#auth').hidden, {timeout: 3000});
    const text = await page.$eval('#auth-message', e => e.textContent);
    assert(/401/.test(text), 'message: ' + text);
    assert(await page.$('#token[type="password"]'), 'a password field');
});

await checks.run('a wrong token gets a clear message', async () => {
    await enterToken('wrong-token');
    await page.waitForFunction(() => /refused/.test(document.querySelector('#auth-message').textContent), {timeout: 3000});
    assert(!(await hidden('#auth')), 'the prompt stays');
});

await checks.run('a metrics+receive token: the table, no admin buttons', async () => {
    await enterToken(READER);
    await page.waitForSelector('#channels-body tr[data-channel="jobs"]', {timeout: 3000});
    assert(await hidden('#auth'), 'prompt hidden');
    const scopes = await page.$eval('#token-scopes', e => e.textContent);
    assert(/metrics/.test(scopes) && !/admin/.test(scopes), 'scopes: ' + scopes);
    await page.click('tr[data-channel="jobs"] button.open');
    // the peek answers (its message, or a 403 if peeking needs more than receive:)
    await page.waitForFunction(() => document.querySelector('#peek li') ||
                               /403/.test(document.querySelector('#peek-message').textContent), {timeout: 3000});
    await sleep(300);
    assert((await page.$$('#actions button')).length === 0, 'admin buttons shown');
    const stored = await page.evaluate(() => ({s: sessionStorage.getItem('hopper.token'), l: localStorage.length,
                                               c: document.cookie}));
    assert(stored.s === READER && stored.l === 0 && stored.c === '', JSON.stringify(stored));
});

await checks.run('an admin token: the admin buttons', async () => {
    await page.click('#token-forget');
    await page.evaluate(() => sessionStorage.clear());
    await page.waitForFunction(() => !document.querySelector('#auth').hidden, {timeout: 3000});
    await enterToken(ADMIN);
    await page.waitForSelector('#actions button[data-action="purge"]', {timeout: 3000});
    assert(await page.$('#actions button[data-action="pause"]'), 'pause button');
    assert((await status(origin, ADMIN)).channels.jobs.messages === 1, 'nothing done yet');
});

await checks.run('no request left the origin; no page error', async () => {
    // a 401 answer is logged by chromium as a failed resource load: expected here
    const real = problems.filter(p => !/status of 401/.test(p));
    assert(real.length === 0, real.join('\n'));
});

await browser.close();
await stopChecked(checks, server);
process.exit(checks.finish());
