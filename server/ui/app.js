/* app.js - hopper's dashboard. Polls GET /status once a second (its only
 * data path) and draws it: the server, the memory and disk budget, one row
 * per channel with rates from the counters' deltas and a sparkline of the
 * last 5 minutes kept in the page; a channel's detail view peeks at its
 * oldest messages and purges, redrives, pauses and resumes it.
 *
 * Safety: everything that comes from the server (channel names, headers,
 * payloads, error messages) enters the page as text (textContent,
 * append(string), createTextNode), never as markup. The page uses no
 * innerHTML at all. */
'use strict';

const POLL_MS = 1000;
const HISTORY_MS = 5 * 60 * 1000; /* the sparkline's span */
const RATE_MS = 5000;             /* in/out per second over about this long */
const PEEK_MAX = 10;
const PREVIEW_BYTES = 2048;
const TOKEN_KEY = 'hopper.token';
const SVG_NS = 'http://www.w3.org/2000/svg';

const state = {
    history: new Map(), /* name -> [{t, messages, sent, received}], oldest first */
    rows: new Map(),    /* name -> {tr, cells: {key: td}} */
    sort: {key: 'name', dir: 1},
    filter: '',
    selected: null,     /* the channel of the detail view */
    doc: null,          /* the last /status */
    scopes: null,       /* null: no token, or a server without /whoami */
    pending: null,      /* the action waiting for its confirmation */
};

function $(id)
{
    return document.getElementById(id);
}

/* An element with attributes and children (strings become text nodes). */
function el(tag, attrs, ...children)
{
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (k === 'class')
            e.className = v;
        else
            e.setAttribute(k, v);
    }
    e.append(...children);
    return e;
}

/* ---- numbers with units ---- */

function formatBytes(n)
{
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = n, i = 0;
    for (; v >= 1024 && i < units.length - 1; i++)
        v /= 1024;
    return (i === 0 || v >= 100 ? Math.round(v) : v.toFixed(1)) + ' ' + units[i];
}

function formatSeconds(s)
{
    if (s < 60)
        return (s < 10 ? s.toFixed(1) : Math.round(s)) + ' s';
    if (s < 3600)
        return (s / 60).toFixed(1) + ' min';
    if (s < 86400)
        return (s / 3600).toFixed(1) + ' h';
    return (s / 86400).toFixed(1) + ' d';
}

function formatUptime(s)
{
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
    const m = Math.floor(s / 60) % 60, sec = Math.floor(s) % 60;
    if (d)
        return `${d} d ${h} h`;
    if (h)
        return `${h} h ${m} min`;
    return m ? `${m} min ${sec} s` : `${sec} s`;
}

function formatRate(r)
{
    return (r === 0 ? '0' : r < 10 ? r.toFixed(1) : String(Math.round(r))) + ' msg/s';
}

function formatCount(n)
{
    return n.toLocaleString('en-US');
}

/* ---- calls, with the token when there is one ---- */

function token()
{
    return sessionStorage.getItem(TOKEN_KEY);
}

/* fetch() of path on this server. A 401 shows the token prompt. */
async function api(method, path)
{
    const headers = {};
    const t = token();
    if (t)
        headers.Authorization = 'Bearer ' + t;
    const res = await fetch(path, {method, headers, cache: 'no-store', credentials: 'omit'});
    if (res.status === 401)
        askToken(t ? 'The server refused this token (401 Unauthorized). Check it and enter it again.'
                   : 'This server needs a token (401 Unauthorized).');
    return res;
}

/* The message of an error answer: its JSON "message", else its status. */
async function errorText(res)
{
    try {
        const doc = await res.json();
        if (doc && typeof doc.message === 'string')
            return `${res.status}: ${doc.message}`;
    } catch (e) {
        /* not JSON */
    }
    return `${res.status} ${res.statusText}`;
}

function setConn(ok, text)
{
    const p = $('conn');
    p.textContent = text;
    p.classList.toggle('bad', !ok);
}

/* ---- the token ---- */

function askToken(message)
{
    $('auth').hidden = false;
    $('auth-message').textContent = message;
    $('token-bar').hidden = true;
}

async function useToken(t)
{
    sessionStorage.setItem(TOKEN_KEY, t);
    $('auth-message').textContent = '';
    await loadScopes();
    poll(true);
}

/* What the token may do, from GET /whoami: the admin buttons follow it. */
async function loadScopes()
{
    state.scopes = null;
    if (!token())
        return;
    let res;
    try {
        res = await api('GET', '/whoami');
    } catch (e) {
        return;
    }
    if (res.ok) {
        const doc = await res.json();
        state.scopes = Array.isArray(doc.scopes) ? doc.scopes.map(String) : [];
        $('auth').hidden = true;
        $('token-bar').hidden = false;
        $('token-scopes').textContent = 'Token scopes: ' + (state.scopes.join(' ') || 'none');
    } else if (res.status === 403) {
        askToken('This token may not do that (403 Forbidden).');
    }
    renderDetail();
}

function forgetToken()
{
    sessionStorage.removeItem(TOKEN_KEY);
    state.scopes = null;
    $('token-bar').hidden = true;
    poll(true);
}

/* True if a scope "admin:GLOB" covers name (GLOB a name, or a prefix
 * ending in '*'); always true without a token. */
function isAdmin(name)
{
    if (state.scopes === null)
        return true;
    return state.scopes.some(s => {
        if (!s.startsWith('admin:'))
            return false;
        const glob = s.slice(6);
        return glob.endsWith('*') ? name.startsWith(glob.slice(0, -1)) : glob === name;
    });
}

/* ---- polling ---- */

let pollTimer = null;
let polling = null; /* the poll in flight */

/* Read /status now and draw it, then again POLL_MS later (skipped while
 * the tab is hidden, unless now is true). One poll at a time: a call while
 * one is in flight waits for it, and with now reads again after it (an
 * action's effect may be newer than what it read). */
function poll(now)
{
    if (polling)
        return now === true ? polling.then(() => poll(true)) : polling;
    clearTimeout(pollTimer);
    if (now !== true && document.hidden) {
        pollTimer = setTimeout(poll, POLL_MS);
        return Promise.resolve();
    }
    polling = readStatus().finally(() => {
        polling = null;
        pollTimer = setTimeout(poll, POLL_MS);
    });
    return polling;
}

async function readStatus()
{
    try {
        const res = await api('GET', '/status');
        if (res.ok) {
            update(await res.json());
            setConn(true, 'Updated ' + new Date().toLocaleTimeString('en-GB'));
        } else if (res.status === 403) {
            setConn(false, 'This token may not read /status (403 Forbidden).');
        } else if (res.status === 401) {
            setConn(false, 'Waiting for a token.');
        } else {
            setConn(false, '/status answered ' + (await errorText(res)));
        }
    } catch (e) {
        setConn(false, 'Cannot reach the server: ' + e.message);
    }
}

/* Keep each channel's samples of the last HISTORY_MS. */
function remember(doc, t)
{
    const names = new Set(Object.keys(doc.channels));
    for (const name of state.history.keys())
        if (!names.has(name))
            state.history.delete(name);
    for (const [name, c] of Object.entries(doc.channels)) {
        let h = state.history.get(name);
        if (!h)
            state.history.set(name, h = []);
        h.push({t, messages: c.messages, sent: c.sent_total, received: c.received_total});
        while (h.length > 2 && h[0].t < t - HISTORY_MS)
            h.shift();
    }
}

/* Messages per second in and out over the last RATE_MS of samples. */
function rates(name)
{
    const h = state.history.get(name) || [];
    const last = h[h.length - 1];
    let first = last;
    for (let i = h.length - 1; i >= 0 && h[i].t >= last.t - RATE_MS; i--)
        first = h[i];
    const dt = last ? (last.t - first.t) / 1000 : 0;
    if (dt <= 0)
        return {in: 0, out: 0};
    return {in: Math.max(0, (last.sent - first.sent) / dt),
            out: Math.max(0, (last.received - first.received) / dt)};
}

function update(doc)
{
    state.doc = doc;
    remember(doc, performance.now());
    $('version').textContent = String(doc.version);
    $('uptime').textContent = formatUptime(doc.uptime_seconds);
    renderBudget(doc.budget || {});
    renderTable(doc);
    renderDetail();
}

/* ---- the budget ---- */

/* A bar of used (and reserved) against limit, with the numbers as text. */
function gauge(title, used, reserved, limit, extra)
{
    const bar = el('div', {class: 'bar', role: 'img'});
    const pct = v => limit > 0 ? Math.min(100, (v / limit) * 100).toFixed(2) + '%' : '0%';
    const usedPart = el('span', {class: 'used'});
    usedPart.style.width = pct(used);
    bar.append(usedPart);
    let text = `${formatBytes(used)} used`;
    if (reserved !== null) {
        const resPart = el('span', {class: 'reserved'});
        resPart.style.width = pct(reserved);
        bar.append(resPart);
        text += ` · ${formatBytes(reserved)} reserved`;
    }
    text += ` · limit ${formatBytes(limit)}`;
    if (limit > 0)
        text += ` (${Math.round(((used + (reserved || 0)) / limit) * 100)}%)`;
    bar.setAttribute('aria-label', `${title}: ${text}`);
    return el('div', {class: 'gauge'}, el('h3', {}, title), bar,
              el('p', {class: 'gauge-text'}, text + (extra ? ` · ${extra}` : '')));
}

function renderBudget(b)
{
    const g = $('gauges');
    g.replaceChildren(
        gauge('Memory', b.memory_bytes || 0, null, b.memory_limit_bytes || 0, ''),
        gauge('Disk', b.disk_bytes || 0, b.disk_reserved_bytes || 0, b.disk_limit_bytes || 0,
              b.filesystem_free_bytes !== undefined
                  ? `${formatBytes(b.filesystem_free_bytes)} free on the file system` : ''));
}

/* ---- the table ---- */

function stateText(c)
{
    /* a forwarded channel that is not paused shows its forwarding alone */
    const parts = c.paused ? ['‖ paused'] : c.forwarded ? [] : ['▶ active'];
    if (c.forwarded && c.forward) {
        let f = `→ forward ${c.forward.state}`;
        if (c.forward.next_attempt_seconds > 0)
            f += `, next in ${formatSeconds(c.forward.next_attempt_seconds)}`;
        parts.push(f);
    }
    return parts.join(' · ');
}

/* The columns: what each sorts by and shows. r: {name, c, rate, dead}. */
const COLUMNS = [
    {key: 'name', label: 'Channel', value: r => r.name},
    {key: 'messages', label: 'Messages', value: r => r.c.messages, text: r => formatCount(r.c.messages)},
    {key: 'oldest', label: 'Oldest', value: r => r.c.oldest_age_seconds,
     text: r => r.c.messages ? formatSeconds(r.c.oldest_age_seconds) : '—'},
    {key: 'memory', label: 'Memory', value: r => r.c.memory_bytes, text: r => formatBytes(r.c.memory_bytes)},
    {key: 'disk', label: 'Disk', value: r => r.c.disk_bytes, text: r => formatBytes(r.c.disk_bytes)},
    {key: 'in', label: 'In', value: r => r.rate.in, text: r => formatRate(r.rate.in)},
    {key: 'out', label: 'Out', value: r => r.rate.out, text: r => formatRate(r.rate.out)},
    {key: 'waiting', label: 'Waiting', value: r => r.c.waiting_receivers,
     text: r => formatCount(r.c.waiting_receivers)},
    {key: 'leased', label: 'Leased', value: r => r.c.leased, text: r => formatCount(r.c.leased)},
    {key: 'delayed', label: 'Delayed', value: r => r.c.delayed, text: r => formatCount(r.c.delayed)},
    {key: 'dead', label: 'Dead letters', value: r => r.dead === null ? -1 : r.dead,
     text: r => r.dead === null ? '—' : formatCount(r.dead)},
    {key: 'state', label: 'State', value: r => stateText(r.c), text: r => stateText(r.c)},
];

function renderHead()
{
    const tr = $('channels-head');
    tr.replaceChildren();
    for (const col of COLUMNS) {
        const sorted = state.sort.key === col.key;
        const th = el('th', {scope: 'col', 'data-col': col.key,
                             'aria-sort': sorted ? (state.sort.dir > 0 ? 'ascending' : 'descending') : 'none'});
        const arrow = sorted ? (state.sort.dir > 0 ? ' ▲' : ' ▼') : '';
        const button = el('button', {type: 'button', class: 'sort'}, col.label,
                          el('span', {'aria-hidden': 'true'}, arrow));
        button.addEventListener('click', () => {
            state.sort = {key: col.key, dir: sorted ? -state.sort.dir : 1};
            renderHead();
            if (state.doc)
                renderTable(state.doc);
            tr.querySelector(`th[data-col="${col.key}"] button`).focus();
        });
        th.append(button);
        tr.append(th);
    }
}

/* A polyline of the channel's depth over the last HISTORY_MS. */
function sparkline(name)
{
    const w = 64, h = 18;
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.setAttribute('width', String(w));
    svg.setAttribute('height', String(h));
    const samples = state.history.get(name) || [];
    const max = Math.max(1, ...samples.map(s => s.messages));
    const end = samples.length ? samples[samples.length - 1].t : 0;
    /* what the page has seen, up to HISTORY_MS, fills the width */
    const span = samples.length ? Math.min(HISTORY_MS, Math.max(10000, end - samples[0].t)) : HISTORY_MS;
    const points = samples.map(s => {
        const x = w - ((end - s.t) / span) * w;
        const y = h - 1 - (s.messages / max) * (h - 2);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    const line = document.createElementNS(SVG_NS, 'polyline');
    line.setAttribute('points', points.join(' '));
    svg.append(line);
    const title = document.createElementNS(SVG_NS, 'title');
    title.textContent = `depth over the last ${formatSeconds(span / 1000)} (5 min at most), peak ${formatCount(max)}`;
    svg.append(title);
    return svg;
}

/* The row of name, made once and kept (so focus survives the updates). */
function rowOf(name)
{
    let row = state.rows.get(name);
    if (row)
        return row;
    const tr = el('tr', {'data-channel': name});
    const cells = {};
    for (const col of COLUMNS) {
        const td = el(col.key === 'name' ? 'th' : 'td', {'data-col': col.key});
        if (col.key === 'name') {
            td.setAttribute('scope', 'row');
            const b = el('button', {type: 'button', class: 'open', 'aria-label': `Details of ${name}`}, name);
            b.addEventListener('click', () => select(name));
            td.append(b);
        }
        cells[col.key] = td;
        tr.append(td);
    }
    row = {tr, cells};
    state.rows.set(name, row);
    return row;
}

function fillRow(row, r)
{
    for (const col of COLUMNS) {
        const td = row.cells[col.key];
        td.setAttribute('data-value', String(col.value(r)));
        if (col.key === 'name')
            continue;
        if (col.key === 'messages')
            td.replaceChildren(el('span', {class: 'num'}, col.text(r)), sparkline(r.name));
        else
            td.textContent = col.text(r);
    }
    row.tr.classList.toggle('paused', Boolean(r.c.paused));
    row.tr.classList.toggle('selected', r.name === state.selected);
}

function renderTable(doc)
{
    const channels = doc.channels || {};
    const names = Object.keys(channels);
    for (const name of state.rows.keys())
        if (!(name in channels))
            state.rows.delete(name);
    const filter = state.filter.toLowerCase();
    const rows = names.filter(n => n.toLowerCase().includes(filter)).map(name => ({
        name, c: channels[name], rate: rates(name),
        dead: (name + '.dead') in channels ? channels[name + '.dead'].messages : null,
    }));
    const col = COLUMNS.find(c => c.key === state.sort.key) || COLUMNS[0];
    rows.sort((a, b) => {
        const x = col.value(a), y = col.value(b);
        const d = typeof x === 'string' ? x.localeCompare(y) : x - y;
        return (d || a.name.localeCompare(b.name)) * state.sort.dir;
    });
    const body = $('channels-body');
    const order = rows.map(r => rowOf(r.name).tr);
    rows.forEach(r => fillRow(rowOf(r.name), r));
    const same = order.length === body.children.length && order.every((tr, i) => body.children[i] === tr);
    if (!same)
        body.replaceChildren(...order);
    $('empty').hidden = names.length > 0;
    $('shown').textContent = filter ? `${rows.length} of ${names.length} shown` : `${names.length} in all`;
}

/* ---- the detail view ---- */

function select(name)
{
    state.selected = name;
    state.pending = null;
    $('detail').hidden = false;
    $('action-message').textContent = '';
    renderDetail();
    peek();
    $('detail-title').focus();
}

function closeDetail()
{
    const name = state.selected;
    state.selected = null;
    $('detail').hidden = true;
    const row = state.rows.get(name);
    if (row)
        row.cells.name.querySelector('button').focus();
}

const ACTIONS = [
    {key: 'pause', label: 'Pause', when: c => !c.paused, method: 'POST', path: n => `/channels/${n}/pause`,
     confirm: n => `Pause ${n}? GETs and forwarding take nothing until it is resumed.`},
    {key: 'resume', label: 'Resume', when: c => c.paused, method: 'POST', path: n => `/channels/${n}/resume`,
     confirm: n => `Resume ${n}?`},
    {key: 'redrive', label: 'Redrive dead letters', when: (c, doc, n) => (n + '.dead') in doc.channels,
     method: 'POST', path: n => `/channels/${n}/redrive`,
     confirm: (n, doc) => `Move the ${formatCount(doc.channels[n + '.dead'].messages)} messages of ${n}.dead back to ${n}?`},
    {key: 'purge', label: 'Purge', when: () => true, method: 'DELETE', path: n => `/channels/${n}/messages`,
     danger: true, confirm: (n, doc) => `Purge ${n}? Its ${formatCount(doc.channels[n].messages)} messages are dropped for good.`},
];

function renderDetail()
{
    const name = state.selected;
    if (name === null || !state.doc)
        return;
    const c = state.doc.channels[name];
    $('detail-title').textContent = name;
    $('detail-title').setAttribute('tabindex', '-1');
    if (!c) {
        $('detail-numbers').replaceChildren(el('div', {}, el('dt', {}, 'Channel'), el('dd', {}, 'no longer exists')));
        $('actions').replaceChildren();
        return;
    }
    const numbers = [
        ['State', stateText(c)], ['Messages', formatCount(c.messages)],
        ['Oldest', c.messages ? formatSeconds(c.oldest_age_seconds) : '—'],
        ['Memory', formatBytes(c.memory_bytes)], ['Disk', `${formatBytes(c.disk_bytes)} in ${c.disk_files} files`],
        ['Sent (total)', formatCount(c.sent_total)], ['Received (total)', formatCount(c.received_total)],
        ['Leased', formatCount(c.leased)], ['Delayed', formatCount(c.delayed)],
        ['Dead-lettered (total)', formatCount(c.dead_lettered_total)],
    ];
    if (c.forwarded && c.forward)
        numbers.push(['Forwarding to', c.forward.target], ['Last error', c.forward.last_error || '—']);
    $('detail-numbers').replaceChildren(...numbers.map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, String(v)))));
    renderActions(name, c);
}

function renderActions(name, c)
{
    const box = $('actions');
    const wanted = isAdmin(name) ? ACTIONS.filter(a => a.when(c, state.doc, name)) : [];
    const keys = wanted.map(a => a.key).join(',');
    if (box.dataset.keys === keys && box.dataset.channel === name)
        return; /* unchanged: keep the buttons, and their focus */
    const focused = document.activeElement && box.contains(document.activeElement);
    box.dataset.keys = keys;
    box.dataset.channel = name;
    box.replaceChildren(...wanted.map(a => {
        const b = el('button', {type: 'button', 'data-action': a.key, class: a.danger ? 'danger' : ''}, a.label);
        b.addEventListener('click', () => ask(a));
        return b;
    }));
    if (!isAdmin(name))
        box.append(el('p', {class: 'hint'}, 'This token has no admin scope for this channel: no actions.'));
    if (focused && box.firstElementChild)
        box.firstElementChild.focus();
}

function ask(action)
{
    const name = state.selected;
    state.pending = {action, name};
    $('confirm-text').textContent = action.confirm(name, state.doc);
    $('confirm-yes').textContent = action.label;
    $('confirm-yes').className = action.danger ? 'danger' : '';
    $('confirm').hidden = false;
    $('confirm-no').focus();
}

function cancel()
{
    state.pending = null;
    $('confirm').hidden = true;
    $('actions').firstElementChild?.focus();
}

async function confirmAction()
{
    const p = state.pending;
    state.pending = null;
    $('confirm').hidden = true;
    if (!p)
        return;
    const msg = $('action-message');
    try {
        const res = await api(p.action.method, p.action.path(encodeURIComponent(p.name)));
        if (res.ok) {
            const doc = await res.json().catch(() => ({}));
            let text = `${p.action.label}: done.`;
            if (typeof doc.purged === 'number')
                text = `Purged ${formatCount(doc.purged)} messages.`;
            else if (typeof doc.moved === 'number')
                text = `Moved ${formatCount(doc.moved)} messages back.`;
            msg.textContent = text;
        } else if (res.status === 403) {
            msg.textContent = `${p.action.label}: this token may not do that (403 Forbidden).`;
        } else {
            msg.textContent = `${p.action.label} failed: ${await errorText(res)}`;
        }
    } catch (e) {
        msg.textContent = `${p.action.label} failed: ${e.message}`;
    }
    await poll(true);
    peek();
    $('actions').firstElementChild?.focus();
}

/* ---- peek: multipart/mixed, read as bytes ---- */

/* bytes as a string of one char per byte, so that string offsets are byte
 * offsets. */
function byteString(bytes)
{
    let s = '';
    for (let i = 0; i < bytes.length; i += 8192)
        s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    return s;
}

/* The parts of a multipart/mixed body: [{headers: [[name, value]], body}]. */
function parseMultipart(bytes, boundary)
{
    const s = byteString(bytes);
    const delim = '--' + boundary;
    const parts = [];
    let at = s.indexOf(delim);
    while (at >= 0) {
        const lineEnd = s.indexOf('\r\n', at);
        if (s.startsWith('--', at + delim.length) || lineEnd < 0)
            break; /* the close */
        const next = s.indexOf('\r\n' + delim, lineEnd);
        const end = next < 0 ? s.length : next;
        const headEnd = s.indexOf('\r\n\r\n', lineEnd);
        const head = headEnd >= 0 && headEnd < end ? s.slice(lineEnd + 2, headEnd) : s.slice(lineEnd + 2, end);
        const bodyStart = headEnd >= 0 && headEnd < end ? headEnd + 4 : end;
        const headers = head.split('\r\n').filter(l => l.includes(':')).map(l => {
            const i = l.indexOf(':');
            return [l.slice(0, i).trim(), latin1ToUtf8(l.slice(i + 1).trim())];
        });
        parts.push({headers, body: bytes.subarray(bodyStart, end)});
        at = next < 0 ? -1 : next + 2;
    }
    return parts;
}

function decodeUtf8(bytes)
{
    try {
        return new TextDecoder('utf-8', {fatal: true}).decode(bytes);
    } catch (e) {
        return null;
    }
}

/* A header value read byte by byte, shown as UTF-8 when it is. */
function latin1ToUtf8(s)
{
    const bytes = Uint8Array.from(s, ch => ch.charCodeAt(0));
    const text = decodeUtf8(bytes);
    return text === null ? s : text;
}

/* Text when the bytes are UTF-8 without control characters (tabs and line
 * ends allowed), else null. */
function textPreview(bytes)
{
    const text = decodeUtf8(bytes.subarray(0, PREVIEW_BYTES + 4));
    const cut = bytes.length > PREVIEW_BYTES + 4;
    if (text === null && !cut)
        return null;
    const t = text !== null ? text : decodeUtf8(bytes.subarray(0, PREVIEW_BYTES));
    if (t === null || /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(t))
        return null;
    return t.slice(0, PREVIEW_BYTES) + (bytes.length > PREVIEW_BYTES ? '…' : '');
}

function hexPreview(bytes)
{
    const lines = [];
    const n = Math.min(bytes.length, 256);
    for (let i = 0; i < n; i += 16) {
        const row = bytes.subarray(i, Math.min(i + 16, n));
        const hex = Array.from(row, b => b.toString(16).padStart(2, '0')).join(' ');
        const ascii = Array.from(row, b => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
        lines.push(i.toString(16).padStart(4, '0') + '  ' + hex.padEnd(47) + '  ' + ascii);
    }
    if (bytes.length > n)
        lines.push(`… ${formatBytes(bytes.length - n)} more`);
    return lines.join('\n');
}

function messageItem(part, index)
{
    const type = (part.headers.find(([k]) => k.toLowerCase() === 'content-type') || [, 'application/octet-stream'])[1];
    const text = textPreview(part.body);
    const dl = el('dl', {class: 'headers'},
                  ...part.headers.map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, v))));
    const preview = el('pre', {class: text === null ? 'payload hex' : 'payload'}, text === null ? hexPreview(part.body) : text);
    return el('li', {class: 'message-item', 'data-index': String(index)},
              el('p', {class: 'message-meta'}, el('strong', {}, type), ` · ${formatBytes(part.body.length)}`,
                 text === null ? ' · shown as hex' : ''),
              dl, preview);
}

async function peek()
{
    const name = state.selected;
    if (name === null)
        return;
    const list = $('peek'), msg = $('peek-message');
    msg.textContent = 'Loading…';
    try {
        const res = await api('GET', `/channels/${encodeURIComponent(name)}/messages?max=${PEEK_MAX}`);
        if (name !== state.selected)
            return;
        if (res.status === 204) {
            list.replaceChildren();
            msg.textContent = 'No messages ready.';
            return;
        }
        if (!res.ok) {
            list.replaceChildren();
            msg.textContent = res.status === 403 ? 'This token may not read this channel (403 Forbidden).'
                                                 : 'Peek failed: ' + (await errorText(res));
            return;
        }
        const m = /boundary="?([^";]+)"?/i.exec(res.headers.get('Content-Type') || '');
        const bytes = new Uint8Array(await res.arrayBuffer());
        const parts = m ? parseMultipart(bytes, m[1]) : [];
        list.replaceChildren(...parts.map(messageItem));
        msg.textContent = `The ${parts.length} oldest, not taken:`;
    } catch (e) {
        msg.textContent = 'Peek failed: ' + e.message;
    }
}

/* ---- start ---- */

function start()
{
    renderHead();
    $('filter').addEventListener('input', e => {
        state.filter = e.target.value;
        if (state.doc)
            renderTable(state.doc);
    });
    $('detail-close').addEventListener('click', closeDetail);
    $('peek-refresh').addEventListener('click', peek);
    $('confirm-yes').addEventListener('click', confirmAction);
    $('confirm-no').addEventListener('click', cancel);
    $('token-forget').addEventListener('click', forgetToken);
    $('auth-form').addEventListener('submit', e => {
        e.preventDefault();
        const t = $('token').value.trim();
        $('token').value = '';
        if (!/^[\x21-\x7e]+$/.test(t)) {
            $('auth-message').textContent = 'A token is printable ASCII without spaces.';
            return;
        }
        useToken(t);
    });
    document.addEventListener('keydown', e => {
        if (e.key === 'Escape' && !$('confirm').hidden)
            cancel();
        else if (e.key === 'Escape' && state.selected !== null)
            closeDetail();
    });
    document.addEventListener('visibilitychange', () => {
        if (!document.hidden)
            poll(true);
    });
    loadScopes().finally(() => poll(true));
}

start();
