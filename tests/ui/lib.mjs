// lib.mjs - what the dashboard's browser tests share: the real hopper
// binary on 127.0.0.1 with an ephemeral port and a temp data directory,
// Debian's chromium driven by puppeteer-core (no browser is downloaded),
// a guard that fails on any request to another origin and on any console
// or page error, and named checks that end in one summary line.
import {spawn} from 'node:child_process';
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import puppeteer from 'puppeteer-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// Small limits so that the reserve file a start makes stays small.
const SMALL = ['--memory-limit', '16MiB', '--max-channels', '64', '--file-bytes', '1MiB',
               '--disk-limit', '48MiB'];

// Start bin on 127.0.0.1:0; resolves {origin, proc, dir, log(), stop()}
// once its log says where it listens.
export function startHopper(bin, extra = [])
{
    const dir = mkdtempSync(join(tmpdir(), 'hopper-ui-'));
    const args = ['--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data'), ...SMALL, ...extra];
    const proc = spawn(bin, args, {stdio: ['ignore', 'ignore', 'pipe']});
    let log = '';
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('hopper did not listen within 10 s:\n' + log)), 10000);
        const early = code => reject(new Error(`hopper exited ${code}:\n${log}`));
        proc.on('exit', early);
        proc.stderr.on('data', chunk => {
            log += chunk;
            const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
            if (m) {
                clearTimeout(timer);
                proc.removeListener('exit', early);
                resolve({
                    origin: `http://127.0.0.1:${m[1]}`, proc, dir, log: () => log,
                    // resolves hopper's exit code (null if killed by a signal)
                    stop: () => new Promise(done => {
                        proc.once('exit', code => {
                            rmSync(dir, {recursive: true, force: true});
                            done(code);
                        });
                        proc.kill('SIGTERM');
                    }),
                });
            }
        });
    });
}

// A request to the server from node (not the page).
export async function http(origin, method, path, {body, headers} = {})
{
    const res = await fetch(origin + path, {method, body, headers});
    const text = await res.text();
    return {status: res.status, text, json: () => JSON.parse(text)};
}

export async function status(origin, token)
{
    const headers = token ? {Authorization: 'Bearer ' + token} : {};
    return (await http(origin, 'GET', '/status', {headers})).json();
}

// Launch chromium and open a page that records what must not happen:
// a request off origin (aborted), a console error, a page error.
export async function openPage(origin, viewport = {width: 1280, height: 900})
{
    const browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-proxy-server',
               '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
    const page = await browser.newPage();
    await page.setViewport(viewport);
    const problems = [];
    const requests = []; /* "METHOD /path" of each request the page made */
    await page.setRequestInterception(true);
    page.on('request', req => {
        const url = req.url();
        requests.push(req.method() + ' ' + new URL(url).pathname);
        if (new URL(url).origin !== origin) {
            problems.push('request to another origin: ' + url);
            req.abort();
        } else {
            req.continue();
        }
    });
    page.on('console', msg => {
        if (msg.type() === 'error')
            problems.push('console error: ' + msg.text());
    });
    page.on('pageerror', err => problems.push('page error: ' + err.message));
    return {browser, page, problems, requests};
}

// Named checks run in order; a failed one is reported and the next runs.
export class Checks {
    constructor(title)
    {
        this.title = title;
        this.passed = 0;
        this.failed = 0;
        this.started = Date.now();
    }

    async run(name, fn)
    {
        const t = Date.now();
        try {
            await fn();
            this.passed++;
            console.log(`ok   ${name} (${Date.now() - t} ms)`);
        } catch (e) {
            this.failed++;
            console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
        }
    }

    // The summary line, and the exit code.
    finish()
    {
        const s = ((Date.now() - this.started) / 1000).toFixed(1);
        console.log(`${this.title}: ${this.passed} passed, ${this.failed} failed (${s} s)`);
        return this.failed ? 1 : 0;
    }
}

export function assert(cond, message)
{
    if (!cond)
        throw new Error(message);
}

export const sleep = ms => new Promise(r => setTimeout(r, ms));

// The table as the page shows it: {name: {col: data-value}} of visible rows,
// in order.
export async function tableRows(page)
{
    return page.$$eval('#channels-body tr', trs => trs.map(tr => {
        const row = {name: tr.getAttribute('data-channel')};
        for (const cell of tr.querySelectorAll('[data-col]'))
            row[cell.getAttribute('data-col')] = cell.getAttribute('data-value');
        return row;
    }));
}

// Stop server; a check that it exited 0 with no sanitizer report in its log.
export async function stopChecked(checks, server)
{
    const code = await server.stop();
    await checks.run('hopper stops cleanly (exit 0, no sanitizer report)', async () => {
        const log = server.log();
        assert(code === 0, `hopper exited ${code}:\n${log.slice(-2000)}`);
        assert(!/ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|WARNING: ThreadSanitizer/.test(log),
               'a sanitizer report:\n' + log.slice(-4000));
    });
}
