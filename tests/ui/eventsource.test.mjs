// eventsource.test.mjs - the event stream of GET /channels/NAME (Accept:
// text/event-stream, server/stream.c) in a real browser: chromium's own
// EventSource, opened from a page of the server's origin, gets every
// message once, in order, as issue 17 describes each event (id, JSON with
// content_type, headers, delivery_count, body or body_base64, receipt when
// leased), and a leased event's receipt acknowledges it.
//   node eventsource.test.mjs HOPPER_BIN
// Exits 0 when every check passed, 1 otherwise.
import {assert, Checks, http, openPage, startHopper, stopChecked} from './lib.mjs';

const [bin] = process.argv.slice(2);
if (!bin) {
    console.error('usage: node eventsource.test.mjs HOPPER_BIN');
    process.exit(2);
}

const checks = new Checks('ui eventsource');
const server = await startHopper(bin, ['--keep-headers', 'X-Trace']);
const {origin} = server;
const {browser, page, problems} = await openPage(origin);
await page.goto(origin + '/', {waitUntil: 'load'}); /* a page of the origin: same-origin streams */

// Open an EventSource on path in the page; its events collect in window[key].
const open = (path, key) => page.evaluate((p, k) => new Promise((resolve, reject) => {
    window[k] = [];
    const es = new EventSource(p);
    window[k + '_es'] = es;
    es.addEventListener('message', e => window[k].push({id: e.lastEventId, data: JSON.parse(e.data)}));
    es.onopen = () => resolve();
    setTimeout(() => reject(new Error('not open after 3 s')), 3000);
}), path, key);
const channelOf = (s, name) =>
    Array.isArray(s.channels) ? s.channels.find(c => c.name === name) : s.channels[name];
const events = (key, n) =>
    page.waitForFunction((k, want) => window[k].length >= want, {timeout: 3000, polling: 20}, key, n)
        .then(() => page.evaluate(k => window[k], key));

await checks.run('every message once, in order: text, UTF-8 and binary bodies, kept headers, ids', async () => {
    await open('/channels/sse', 'plain');
    const sent = [];
    for (const [body, type] of [['one', 'text/plain'], ['zwei ü €', 'text/plain; charset=utf-8'],
                                [Uint8Array.from([0, 255, 1, 128]), 'application/octet-stream']]) {
        const res = await http(origin, 'POST', '/channels/sse',
                               {body, headers: {'Content-Type': type, 'X-Trace': 't' + sent.length}});
        assert(res.status === 202, 'POST ' + res.status);
        sent.push(type);
    }
    const got = await events('plain', 3);
    await new Promise(r => setTimeout(r, 200)); /* nothing more comes */
    const all = await page.evaluate(() => window.plain);
    assert(all.length === 3, `${all.length} events`);
    assert(got[0].data.body === 'one' && got[1].data.body === 'zwei ü €', 'text bodies ' + JSON.stringify(got));
    assert(got[2].data.body_base64 === 'AP8BgA==' && got[2].data.body === undefined, 'binary body');
    got.forEach((e, i) => {
        assert(e.id && e.id === e.data.id, `event ${i}: id ${e.id} vs ${e.data.id}`);
        assert(e.data.content_type === sent[i], `event ${i}: type ${e.data.content_type}`);
        assert(e.data.delivery_count === 1, `event ${i}: count ${e.data.delivery_count}`);
        assert(JSON.stringify(e.data.headers).includes('t' + i), `event ${i}: headers ${JSON.stringify(e.data.headers)}`);
        assert(e.data.receipt === undefined, 'no receipt without a lease');
    });
    const left = await http(origin, 'GET', '/channels/sse?wait=0');
    assert(left.status === 204, 'the stream took them all: ' + left.status);
    await page.evaluate(() => window.plain_es.close());
});

await checks.run('?lease=30: each event has a receipt, which acknowledges it', async () => {
    await open('/channels/leased?lease=30', 'leased');
    await http(origin, 'POST', '/channels/leased', {body: 'work', headers: {'Content-Type': 'text/plain'}});
    const [e] = await events('leased', 1);
    assert(e.data.body === 'work' && typeof e.data.receipt === 'string' && e.data.receipt.length > 0,
           'leased event ' + JSON.stringify(e));
    const s1 = await (await http(origin, 'GET', '/status')).json();
    const ch = channelOf(s1, 'leased');
    assert(ch && ch.leased === 1, 'leased in /status ' + JSON.stringify(ch));
    const ack = await page.evaluate(r => fetch('/channels/leased/messages/' + r, {method: 'DELETE'}).then(x => x.status),
                                    e.data.receipt);
    assert(ack === 204, 'ack ' + ack);
    const s2 = await (await http(origin, 'GET', '/status')).json();
    assert(channelOf(s2, 'leased').leased === 0, 'acknowledged');
    await page.evaluate(() => window.leased_es.close());
});

await checks.run('no console or page errors, no request to another origin', async () => {
    assert(problems.length === 0, problems.join('\n'));
});
await browser.close();
await stopChecked(checks, server);
process.exit(checks.finish());
