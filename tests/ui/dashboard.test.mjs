// dashboard.test.mjs - the dashboard (GET /) in a real headless chromium
// against the real hopper binary: the table follows /status, rates move
// under load, sorting and filtering work, data shows as text, peek, purge
// and pause work, and the page calls nothing but its own server.
//   node dashboard.test.mjs HOPPER_BIN OUT_DIR
// Screenshots go to OUT_DIR (dashboard-desktop.png, dashboard-375.png); with
// UPDATE_SCREENSHOT=1 the desktop one is copied to tests/ui/dashboard.png.
// Exits 0 when every check passed, 1 otherwise.
import {copyFileSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';
import {assert, Checks, http, openPage, sleep, startHopper, status, stopChecked, tableRows} from './lib.mjs';

const [bin, outDir = '.'] = process.argv.slice(2);
if (!bin) {
    console.error('usage: node dashboard.test.mjs HOPPER_BIN [OUT_DIR]');
    process.exit(2);
}

const XSS = '<img src=x onerror="window.__xss=1">';
const XSS_HEADER = '<script>window.__xss=2</script>';
const checks = new Checks('ui dashboard');
// hooks is forwarded to a closed port on 127.0.0.1: it retries, 30 s apart
const server = await startHopper(bin, ['--keep-headers', 'X-Note', '--max-deliveries', '1',
                                       '--forward', 'hooks=http://127.0.0.1:9/hook',
                                       '--forward-retry-min', '30', '--forward-retry-max', '30']);
const {origin} = server;
const post = (name, body, headers = {}) =>
    http(origin, 'POST', `/channels/${name}`, {body, headers: {'Content-Type': 'text/plain', ...headers}});

for (let i = 1; i <= 3; i++)
    await post('alpha', `alpha-${i}`);
await post('beta', 'beta-1');
await post('xss', XSS, {'X-Note': XSS_HEADER});
await post('odd.name_with-all-chars', 'x');
await http(origin, 'POST', '/channels/bin', {body: Uint8Array.from({length: 40}, (_, i) => i),
                                             headers: {'Content-Type': 'application/octet-stream'}});
await http(origin, 'GET', '/channels/empty?wait=0');
await post('hooks', 'to forward');
// a message dead-lettered: a lease that ends unacknowledged, once
await post('jobs', 'will die');
await post('jobs', 'stays');
await http(origin, 'GET', '/channels/jobs?lease=1');

const {browser, page, problems, requests} = await openPage(origin);
const cell = (name, col) =>
    page.$eval(`#channels-body tr[data-channel="${name}"] [data-col="${col}"]`, td => td.getAttribute('data-value'));
const waitCell = (name, col, want, timeout = 2000) =>
    page.waitForFunction((n, c, w) => {
        const td = document.querySelector(`#channels-body tr[data-channel="${n}"] [data-col="${c}"]`);
        return td && td.getAttribute('data-value') === w;
    }, {timeout, polling: 50}, name, col, want);

await checks.run('GET / and its files: types, no-cache, CSP, nosniff; 404 and 405 as JSON', async () => {
    const res = await fetch(origin + '/');
    assert(res.status === 200, 'GET / ' + res.status);
    assert(res.headers.get('content-type') === 'text/html; charset=utf-8', 'type ' + res.headers.get('content-type'));
    assert(res.headers.get('cache-control') === 'no-cache', 'cache-control');
    const csp = res.headers.get('content-security-policy') || '';
    for (const d of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"])
        assert(csp.includes(d), 'CSP lacks ' + d);
    assert(res.headers.get('x-content-type-options') === 'nosniff', 'nosniff');
    const etag = res.headers.get('etag');
    const again = await fetch(origin + '/', {headers: {'If-None-Match': etag}});
    assert(again.status === 304, 'If-None-Match: ' + again.status);
    let total = (await res.arrayBuffer()).byteLength;
    for (const [path, type] of [['/ui/app.js', 'text/javascript'], ['/ui/app.css', 'text/css']]) {
        const r = await fetch(origin + path);
        assert(r.status === 200 && r.headers.get('content-type').startsWith(type), path);
        total += (await r.arrayBuffer()).byteLength;
    }
    assert(total < 100 * 1024, `page is ${total} bytes`);
    const missing = await http(origin, 'GET', '/ui/nope.js');
    assert(missing.status === 404 && missing.json().error === 'not_found', '/ui/nope.js ' + missing.status);
    const head = await fetch(origin + '/', {method: 'HEAD'});
    assert(head.status === 200 && head.headers.get('etag') === etag && (await head.text()) === '', 'HEAD /');
    const post = await fetch(origin + '/', {method: 'POST'});
    assert(post.status === 405 && post.headers.get('allow') === 'GET, HEAD', 'POST / ' + post.status);
    console.log(`     page size: ${total} bytes`);
});

await page.goto(origin + '/', {waitUntil: 'load'});

await checks.run('the table matches /status: names and counts', async () => {
    await page.waitForSelector('#channels-body tr[data-channel="xss"]', {timeout: 3000});
    await waitCell('jobs', 'dead', '1', 4000); /* once the 1 s lease ended */
    const st = await status(origin);
    const rows = await tableRows(page);
    const names = rows.map(r => r.name).sort();
    assert(JSON.stringify(names) === JSON.stringify(Object.keys(st.channels).sort()),
           `names ${names} vs ${Object.keys(st.channels)}`);
    for (const r of rows) {
        const c = st.channels[r.name];
        assert(Number(r.messages) === c.messages, `${r.name}: ${r.messages} vs ${c.messages}`);
        assert(Number(r.leased) === c.leased, `${r.name} leased`);
    }
    await waitCell('jobs', 'dead', '1', 4000); /* once the 1 s lease ended */
    assert(await cell('alpha', 'dead') === '-1', 'alpha has no NAME.dead');
    const version = await page.$eval('#version', e => e.textContent);
    assert(version === st.version, 'version ' + version);
    const gauges = await page.$eval('#gauges', e => e.textContent);
    assert(/Memory/.test(gauges) && /limit 16\.0 MiB/.test(gauges) && /reserved/.test(gauges), 'gauges: ' + gauges);
});

await checks.run('a forwarded channel shows its state and next try', async () => {
    await page.waitForFunction(() => /→ forward (retrying|failing), next in \d+(\.\d)? s/.test(
        document.querySelector('tr[data-channel="hooks"] [data-col="state"]').textContent), {timeout: 4000});
    const st = await status(origin);
    assert(st.channels.hooks.forwarded && st.channels.hooks.forward.state !== 'ok', JSON.stringify(st.channels.hooks));
});

await checks.run('the table follows a change within 2 s', async () => {
    await post('beta', 'beta-2');
    await post('beta', 'beta-3');
    const t = Date.now();
    await waitCell('beta', 'messages', '3', 2000);
    console.log(`     seen after ${Date.now() - t} ms`);
});

await checks.run('in and out rates become non-zero under a bounded load', async () => {
    const load = (async () => {
        for (let i = 0; i < 40; i++) {
            await post('rate', 'm' + i);
            if (i % 2)
                await http(origin, 'GET', '/channels/rate');
            await sleep(40);
        }
    })();
    await page.waitForFunction(() => {
        const v = c => Number(document.querySelector(`tr[data-channel="rate"] [data-col="${c}"]`)?.getAttribute('data-value'));
        return v('in') > 0 && v('out') > 0;
    }, {timeout: 5000, polling: 100});
    await load;
    const text = await page.$eval('tr[data-channel="rate"] [data-col="in"]', e => e.textContent);
    assert(/msg\/s$/.test(text), 'unit: ' + text);
});

await checks.run('sorting: click and Enter on a header, aria-sort', async () => {
    await page.click('th[data-col="messages"] button');
    let rows = await tableRows(page);
    let counts = rows.map(r => Number(r.messages));
    assert(counts.every((c, i) => i === 0 || counts[i - 1] <= c), 'ascending: ' + counts);
    assert(await page.$eval('th[data-col="messages"]', e => e.getAttribute('aria-sort')) === 'ascending', 'aria-sort asc');
    await page.focus('th[data-col="messages"] button');
    await page.keyboard.press('Enter');
    rows = await tableRows(page);
    counts = rows.map(r => Number(r.messages));
    assert(counts.every((c, i) => i === 0 || counts[i - 1] >= c), 'descending: ' + counts);
    assert(await page.$eval('th[data-col="messages"]', e => e.getAttribute('aria-sort')) === 'descending', 'aria-sort desc');
    assert(await page.$eval('th[data-col="name"]', e => e.getAttribute('aria-sort')) === 'none', 'name not sorted');
    await page.click('th[data-col="name"] button');
    const names = (await tableRows(page)).map(r => r.name);
    assert(JSON.stringify(names) === JSON.stringify([...names].sort((a, b) => a.localeCompare(b))), 'by name: ' + names);
});

await checks.run('filtering by name', async () => {
    await page.type('#filter', 'alp');
    let names = (await tableRows(page)).map(r => r.name);
    assert(names.length === 1 && names[0] === 'alpha', 'filtered: ' + names);
    await page.$eval('#filter', e => { e.value = ''; e.dispatchEvent(new Event('input')); });
    await page.type('#filter', '.DEAD');
    names = (await tableRows(page)).map(r => r.name);
    assert(names.length === 1 && names[0] === 'jobs.dead', 'case-insensitive: ' + names);
    await page.$eval('#filter', e => { e.value = ''; e.dispatchEvent(new Event('input')); });
    assert((await tableRows(page)).length >= 9, 'cleared');
});

await checks.run('payloads, headers and names render as text, never markup', async () => {
    const bad = await http(origin, 'POST', '/channels/%3Cb%3E', {body: 'x'});
    assert(bad.status === 400, 'a name with markup is refused: ' + bad.status);
    await page.click('tr[data-channel="xss"] button.open');
    await page.waitForSelector('#peek li', {timeout: 3000});
    const payload = await page.$eval('#peek li .payload', e => e.textContent);
    assert(payload === XSS, 'payload shown as: ' + payload);
    const headers = await page.$eval('#peek li .headers', e => e.textContent);
    assert(headers.includes(XSS_HEADER), 'header shown as: ' + headers);
    await sleep(300);
    const found = await page.evaluate(() => ({
        img: document.querySelectorAll('img').length,
        scripts: document.querySelectorAll('script:not([src="/ui/app.js"])').length,
        b: document.querySelectorAll('b').length,
        xss: typeof window.__xss,
    }));
    assert(found.img === 0 && found.scripts === 0 && found.b === 0, JSON.stringify(found));
    assert(found.xss === 'undefined', 'window.__xss is ' + found.xss);
});

await checks.run('peek shows the oldest message first, with type and size', async () => {
    await page.click('tr[data-channel="alpha"] button.open');
    await page.keyboard.press('Escape'); /* closes the detail, focus back on alpha's name */
    assert(await page.$eval('#detail', e => e.hidden), 'Escape closes');
    assert(await page.evaluate(() => document.activeElement.textContent) === 'alpha', 'focus back');
    await page.keyboard.press('Enter'); /* opens it again, from the keyboard */
    await page.waitForFunction(() => document.querySelector('#detail-title').textContent === 'alpha' &&
                               document.querySelectorAll('#peek li').length === 3, {timeout: 3000});
    const items = await page.$$eval('#peek li', lis => lis.map(li => ({
        payload: li.querySelector('.payload').textContent, meta: li.querySelector('.message-meta').textContent})));
    assert(items[0].payload === 'alpha-1' && items[2].payload === 'alpha-3', JSON.stringify(items));
    assert(/text\/plain/.test(items[0].meta) && /7 B/.test(items[0].meta), items[0].meta);
    const st = await status(origin);
    assert(st.channels.alpha.messages === 3, 'peek took nothing');
});

await checks.run('peek shows a binary payload as hex', async () => {
    await page.click('tr[data-channel="bin"] button.open');
    await page.waitForFunction(() => document.querySelector('#detail-title').textContent === 'bin' &&
                               document.querySelector('#peek li .payload.hex'), {timeout: 3000});
    const hex = await page.$eval('#peek li .payload', e => e.textContent);
    assert(hex.startsWith('0000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f'), hex);
    assert(/0020  20 21 22 23 24 25 26 27 +  !"#\$%&'/.test(hex), hex);
    const meta = await page.$eval('#peek li .message-meta', e => e.textContent);
    assert(/application\/octet-stream · 40 B · shown as hex/.test(meta), meta);
    await page.click('tr[data-channel="alpha"] button.open');
});

await checks.run('purge asks first, then empties the channel', async () => {
    await page.click('#actions button[data-action="purge"]');
    assert(!(await page.$eval('#confirm', e => e.hidden)), 'confirmation shown');
    assert((await status(origin)).channels.alpha.messages === 3, 'nothing purged before the confirmation');
    await page.click('#confirm-no');
    assert(await page.$eval('#confirm', e => e.hidden), 'cancel hides it');
    await page.click('#actions button[data-action="purge"]');
    await page.click('#confirm-yes');
    await page.waitForFunction(() => /Purged 3/.test(document.querySelector('#action-message').textContent), {timeout: 3000});
    assert((await status(origin)).channels.alpha.messages === 0, 'alpha still has messages');
    await waitCell('alpha', 'messages', '0', 2000);
});

await checks.run('pause shows as paused (words, not only colour); resume', async () => {
    await page.click('tr[data-channel="beta"] button.open');
    await page.waitForSelector('#actions button[data-action="pause"]', {timeout: 3000});
    await page.click('#actions button[data-action="pause"]');
    await page.click('#confirm-yes');
    await page.waitForFunction(() => /paused/.test(document.querySelector('tr[data-channel="beta"] [data-col="state"]').textContent),
                               {timeout: 3000});
    assert((await status(origin)).channels.beta.paused === true, '/status says paused');
    assert(await page.$eval('tr[data-channel="beta"]', e => e.classList.contains('paused')), 'row marked');
    await page.waitForSelector('#actions button[data-action="resume"]', {timeout: 3000});
});

await checks.run('redrive moves NAME.dead back to NAME', async () => {
    await page.click('tr[data-channel="jobs"] button.open');
    await page.waitForSelector('#actions button[data-action="redrive"]', {timeout: 3000});
    await page.click('#actions button[data-action="redrive"]');
    await page.click('#confirm-yes');
    await waitCell('jobs', 'dead', '0', 3000);
    assert((await status(origin)).channels['jobs.dead'].messages === 0, 'jobs.dead emptied');
});

await checks.run('screenshots: desktop, and 375 px wide without page overflow', async () => {
    await page.click('tr[data-channel="xss"] button.open');
    await page.waitForSelector('#peek li', {timeout: 3000});
    await sleep(1200);
    const desktop = join(outDir, 'dashboard-desktop.png');
    await page.screenshot({path: desktop, fullPage: true});
    await page.setViewport({width: 375, height: 812});
    await sleep(300);
    const widths = await page.evaluate(() => ({doc: document.documentElement.scrollWidth,
                                               table: document.querySelector('.table-wrap').clientWidth}));
    assert(widths.doc <= 375, 'the page is wider than 375 px: ' + widths.doc);
    await page.screenshot({path: join(outDir, 'dashboard-375.png'), fullPage: true});
    await page.setViewport({width: 1280, height: 900});
    if (process.env.UPDATE_SCREENSHOT === '1') {
        const here = dirname(fileURLToPath(import.meta.url));
        copyFileSync(desktop, join(here, 'dashboard.png'));
        console.log('     copied to tests/ui/dashboard.png');
    }
});

await checks.run('no request left the origin; no console or page error', async () => {
    assert(problems.length === 0, problems.join('\n'));
});

await checks.run('the page reads /status only (peek and the actions aside)', async () => {
    const allowed = /^(GET \/|GET \/ui\/app\.(js|css)|GET \/ui\/icon\.svg|GET \/status|GET \/whoami|GET \/channels\/[^/]+\/messages|DELETE \/channels\/[^/]+\/messages|POST \/channels\/[^/]+\/(pause|resume|redrive))$/;
    const other = [...new Set(requests.filter(r => !allowed.test(r)))];
    assert(other.length === 0, 'other requests: ' + other.join(', '));
    const polls = requests.filter(r => r === 'GET /status').length;
    assert(polls >= 5, `${polls} polls of /status`);
});

await browser.close();
await stopChecked(checks, server);
process.exit(checks.finish());
