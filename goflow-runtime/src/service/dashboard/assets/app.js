// The goflow dashboard: one script, no framework, no build step, no network beyond the
// service's own JSON routes. Three views picked by the URL's hash:
//   #/                              overview of every flow
//   #/flow/<name>                   one flow: graph, requests, dead letters
//   #/flow/<name>/requests/<id>     one request, live
// Everything coming from the service is written with textContent / setAttribute, never as
// HTML: request ids, inputs, outputs and failures come from users.

// ---------------------------------------------------------------------------------------
// Settings and small helpers

/** The server writes `true` here in read-only mode: then no action control is ever built. */
const READ_ONLY =
  document.querySelector('meta[name="goflow-read-only"]')?.getAttribute('content') === 'true';
/** `GOFLOW_TRACE_URL`, when set: a tracing UI's address of a trace, `{trace_id}` for its id. */
const TRACE_URL =
  document.querySelector('meta[name="goflow-trace-url"]')?.getAttribute('content') || '';
const TOKEN_KEY = 'goflow-token';
/** The API lives next to `/ui`: the page may be served under a prefix. */
const BASE = location.pathname.replace(/\/ui\/?$/, '').replace(/\/$/, '');
const SVG_NS = 'http://www.w3.org/2000/svg';
const PAGE_SIZE = 50;

const REQUEST_STATUSES = ['queued', 'running', 'paused', 'completed', 'failed', 'stopped'];
const ENDED = new Set(['completed', 'failed', 'stopped']);
/** Vertex statuses from worst to best: a for-each vertex shows the worst of its instances. */
const WORST_FIRST = ['failed', 'retrying', 'running', 'parked', 'queued', 'pending', 'cancelled', 'skipped', 'done'];
/** The order counts are written in ("12 done · 2 running · 1 failed"). */
const COUNT_ORDER = ['done', 'running', 'retrying', 'parked', 'queued', 'pending', 'failed', 'cancelled', 'skipped'];
const VERTEX_ENDED = new Set(['done', 'failed', 'cancelled', 'skipped']);

const $ = (selector, root = document) => root.querySelector(selector);

/** Builds an element: attributes by name (`on*` are listeners), children as nodes or text. */
function el(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** The same in the SVG namespace. */
function svgEl(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else {
      node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Appends children to a view's root, skipping the absent ones (null, false) as el() does. */
const mount = (root, ...children) => build(root, {}, children);

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });

/** Runs `fn` every `ms` until `signal` aborts (the view is left). */
function every(ms, fn, signal) {
  const timer = setInterval(() => { if (!signal.aborted) guard(fn)(); }, ms);
  signal.addEventListener('abort', () => clearInterval(timer), { once: true });
}

/**
 * At most one call of async `fn` per `ms`; a call asked for meanwhile (or while one runs)
 * happens once, after. Used for counts (1 s) and a request's full state (500 ms).
 */
function throttle(fn, ms, signal) {
  let last = 0;
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    if (signal.aborted) return;
    running = true;
    last = Date.now();
    try { await fn(); } catch (error) { report(error); } finally { running = false; }
    if (again) { again = false; schedule(); }
  };
  const schedule = () => {
    if (signal.aborted || timer) return;
    if (running) { again = true; return; }
    timer = setTimeout(run, Math.max(0, last + ms - Date.now()));
  };
  signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  return schedule;
}

const pretty = (value) => JSON.stringify(value, null, 2);
const pad2 = (n) => String(n).padStart(2, '0');

function formatDuration(ms) {
  if (ms === null || ms === undefined || ms < 0 || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad2(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${pad2(Math.floor((s % 3600) / 60))} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function relative(ms) {
  const ago = Date.now() - ms;
  if (ago < 1000) return 'just now';
  if (ago < 60_000) return `${Math.floor(ago / 1000)} s ago`;
  if (ago < 3_600_000) return `${Math.floor(ago / 60_000)} min ago`;
  if (ago < 86_400_000) return `${Math.floor(ago / 3_600_000)} h ago`;
  return `${Math.floor(ago / 86_400_000)} d ago`;
}

const exact = (ms) => {
  const d = new Date(ms);
  return `${d.toLocaleString()}.${String(d.getMilliseconds()).padStart(3, '0')}`;
};

/** A time shown relative ("3 s ago"), exact in its title; the ticker keeps it current. */
function timeEl(ms) {
  if (!ms) return el('span', { class: 'muted' }, '–');
  return el('time', { 'data-rel-ms': ms, datetime: new Date(ms).toISOString(), title: exact(ms) }, relative(ms));
}

/** A duration that keeps growing while `end` is unknown. */
function durationEl(start, end) {
  const span = el('span', { class: 'num' });
  setDuration(span, start, end);
  return span;
}

function setDuration(span, start, end) {
  if (!start) { span.textContent = '–'; return; }
  if (end) { span.removeAttribute('data-dur-from'); span.textContent = formatDuration(end - start); return; }
  span.setAttribute('data-dur-from', start);
  span.textContent = formatDuration(Date.now() - start);
}

/** One ticker for the whole page: relative times and running durations. */
setInterval(() => {
  for (const t of document.querySelectorAll('[data-rel-ms]')) t.textContent = relative(Number(t.getAttribute('data-rel-ms')));
  for (const d of document.querySelectorAll('[data-dur-from]')) d.textContent = formatDuration(Date.now() - Number(d.getAttribute('data-dur-from')));
}, 3000);

function badge(status, attrs = {}) {
  return el('span', { class: 'badge', 'data-status': status, ...attrs }, status);
}

function setBadge(node, status) {
  node.setAttribute('data-status', status);
  node.textContent = status;
}

const flowHref = (flow) => `#/flow/${encodeURIComponent(flow)}`;
const requestHref = (flow, id) => `${flowHref(flow)}/requests/${encodeURIComponent(id)}`;
const flowPath = (flow) => `/flow/${encodeURIComponent(flow)}`;
const requestPath = (flow, id) => `${flowPath(flow)}/requests/${encodeURIComponent(id)}`;

const failureText = (f) => (f ? `${f.kind}${f.detail ? `: ${f.detail}` : ''}` : '');
const requestFailureText = (f) => (f ? `${f.vertex} (${f.attempts} attempt${f.attempts === 1 ? '' : 's'}) — ${failureText(f.failure)}` : '');

// ---------------------------------------------------------------------------------------
// Messages: every error reaches the user here, none is swallowed or sent to the console.

function showBanner(message, kind = 'error', details = []) {
  const box = $('#banners');
  // The same message again (a refresh loop failing) bumps a counter instead of piling up.
  for (const old of box.children) {
    if (old.dataset.message === message && old.dataset.kind === kind) {
      const n = Number(old.dataset.repeat || 1) + 1;
      old.dataset.repeat = n;
      $('.repeat', old).textContent = `×${n}`;
      return;
    }
  }
  const banner = el('div', { class: `banner ${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-banner': kind, 'data-message': message },
    el('div', { class: 'banner-text' }, el('span', {}, message), ' ', el('span', { class: 'repeat' }),
      details.length ? el('ul', {}, details.map((d) => el('li', {}, d))) : null),
    el('button', { type: 'button', class: 'ghost dismiss', 'aria-label': 'Dismiss', 'data-dismiss': true, onclick: () => banner.remove() }, '×'));
  box.append(banner);
}

const showError = (message) => showBanner(message, 'error');
const clearBanners = () => $('#banners').replaceChildren();

/** Where every caught error ends: aborted work (a view left) and 401s (login shown) are not errors. */
function report(error) {
  if (!error || error.name === 'AbortError' || error.silent) return;
  showError(error.message || String(error));
}

/** Wraps an async handler so its failure is reported, never left uncaught. */
const guard = (fn) => (...args) => {
  try {
    const result = fn(...args);
    if (result && typeof result.catch === 'function') result.catch(report);
  } catch (error) {
    report(error);
  }
};

// A last safety net: a rejection nothing handled still reaches the banner, not the console.
window.addEventListener('unhandledrejection', (event) => { event.preventDefault(); report(event.reason); });

// ---------------------------------------------------------------------------------------
// The API: one fetch helper, one SSE reader.

class ApiError extends Error {
  constructor(status, code, message, silent = false) {
    super(message);
    this.status = status;
    this.code = code;
    this.silent = silent;
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

function authHeaders(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

/** The error an answer carries: its `{"error": {"code","message"}}`, else its status line. */
async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText || 'error'}`;
  try {
    const body = JSON.parse(await response.text());
    if (body?.error) { code = body.error.code || code; message = body.error.message || message; }
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(response.status, code, message);
}

/** Every JSON call goes through here: token, errors as ApiError, 401 → login form. */
async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = authHeaders({ Accept: 'application/json' });
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(BASE + path, { method, headers, body: payload, signal, cache: 'no-store' });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'network', `Cannot reach the service (${method} ${path}): ${error.message}`);
  }
  if (response.status === 401) {
    showLogin(token() ? 'The service refused the token: sign in again.' : 'The service asks for a token.');
    throw new ApiError(401, 'unauthorized', 'unauthorized', true);
  }
  if (!response.ok) throw await errorOf(response);
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(response.status, 'bad_json', `${method} ${path} answered something that is not JSON`);
  }
}

/**
 * Follows a Server-Sent Events route with fetch (EventSource cannot send the token).
 * Calls `onEvent(type, data)` per event; after a drop or an `error` event, reconnects with
 * back-off (1 s, 2 s, 4 s … 10 s) and `Last-Event-ID`. When the server ends the stream,
 * reconnects only if `reconnect()` says so. Stops when `signal` aborts.
 */
function follow(path, { signal, onEvent, reconnect = () => true, onEnd = () => {} }) {
  let lastId = null;
  let delay = 1000;
  const loop = async () => {
    while (!signal.aborted) {
      let failed = false;
      try {
        const headers = authHeaders({ Accept: 'text/event-stream' });
        if (lastId) headers['Last-Event-ID'] = lastId;
        const response = await fetch(BASE + path, { headers, signal, cache: 'no-store' });
        if (response.status === 401) { showLogin('The service asks for a token.'); return; }
        if (!response.ok) throw await errorOf(response);
        const outcome = await readEvents(response.body, (event) => {
          if (event.id) lastId = event.id;
          delay = 1000; // data flows again: the next drop starts the back-off afresh
          if (event.type === 'error') {
            showError(`Live updates: ${event.data}`);
            return false; // stop reading; reconnect below
          }
          let data;
          try { data = JSON.parse(event.data); } catch {
            showError(`Live updates: an event that is not JSON (${event.type})`);
            return true;
          }
          onEvent(event.type, data);
          return true;
        });
        failed = outcome === 'stopped';
        if (!failed && !reconnect()) { onEnd(); return; }
      } catch (error) {
        if (signal.aborted || error.name === 'AbortError') return;
        // A refusal (events off, unknown request) does not change by asking again.
        if (error.status >= 400 && error.status < 500 && error.status !== 429) {
          showError(`Live updates unavailable: ${error.message}`);
          return;
        }
        showError(`Live updates interrupted (${error.message}); reconnecting…`);
        failed = true;
      }
      await sleep(failed ? delay : 1000, signal);
      if (failed) delay = Math.min(delay * 2, 10_000);
    }
  };
  loop().catch(report);
}

/** Reads an event stream's body; `handle` answers false to stop. Resolves 'ended' or 'stopped'. */
async function readEvents(body, handle) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event = { type: '', data: [], id: null };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return 'ended';
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, '');
        buffer = buffer.slice(newline + 1);
        if (line === '') {
          // A blank line ends an event.
          if (event.data.length || event.type) {
            const keepGoing = handle({ type: event.type || 'message', data: event.data.join('\n'), id: event.id });
            if (!keepGoing) { await reader.cancel().catch(() => {}); return 'stopped'; }
          }
          event = { type: '', data: [], id: null };
          continue;
        }
        if (line.startsWith(':')) continue; // a keep-alive comment
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event.type = value;
        else if (field === 'data') event.data.push(value);
        else if (field === 'id') event.id = value;
      }
    }
  } finally {
    reader.releaseLock?.();
  }
}

// ---------------------------------------------------------------------------------------
// Login, sign out, header

let loginShown = false;

function showLogin(message) {
  if (loginShown) return;
  loginShown = true;
  current?.abort(); // no stream or timer keeps running behind the form
  const input = el('input', { id: 'token', type: 'password', autocomplete: 'current-password', required: true, 'aria-describedby': 'login-help' });
  const form = el('form', { id: 'login-form', class: 'card login' },
    el('h1', {}, 'Sign in'),
    el('p', { id: 'login-help', class: 'muted' }, message, ' The token stays in this tab only.'),
    el('label', { for: 'token' }, 'API token'),
    input,
    el('div', { class: 'row' }, el('button', { type: 'submit', class: 'primary' }, 'Sign in')));
  // The form takes its own fields so that a password manager sees a username-less login.
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    loginShown = false;
    updateHeader();
    render();
  });
  $('#main').replaceChildren(form);
  input.focus();
}

function updateHeader(engine) {
  $('#sign-out').hidden = !token();
  $('[data-read-only-badge]').hidden = !READ_ONLY;
  if (engine) {
    const tag = $('[data-engine]');
    tag.textContent = engine;
    tag.title = `engine: ${engine}`;
    tag.hidden = false;
  }
}

$('#sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  updateHeader();
  render();
});

// ---------------------------------------------------------------------------------------
// Router: one view at a time; leaving a view aborts everything it started.

let current = null;

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { view: overview };
  if (parts[0] === 'flow' && parts.length === 2) return { view: flowPage, args: [parts[1]] };
  if (parts[0] === 'flow' && parts.length === 4 && parts[2] === 'requests') return { view: requestPage, args: [parts[1], parts[3]] };
  return { view: notFound };
}

function render() {
  current?.abort();
  current = new AbortController();
  loginShown = false;
  clearBanners();
  closeDialog();
  const root = el('div', { class: 'view' });
  $('#main').replaceChildren(root);
  let route;
  try { route = parseHash(); } catch { route = { view: notFound }; }
  const signal = current.signal;
  Promise.resolve()
    .then(() => route.view(root, signal, ...(route.args || [])))
    .catch(report);
}

window.addEventListener('hashchange', render);

function notFound(root) {
  document.title = 'goflow';
  mount(root, el('h1', {}, 'Not found'), el('p', {}, 'No such page. ', el('a', { href: '#/' }, 'Back to the overview')));
}

/** The engine's kind for the header, asked once. */
let engineAsked = false;
function loadEngine(signal) {
  if (engineAsked) return;
  engineAsked = true;
  api('/flows', { signal }).then((body) => updateHeader(body.engine)).catch((e) => { engineAsked = false; report(e); });
}

// ---------------------------------------------------------------------------------------
// Confirm dialog (in-page: keyboard reachable and testable)

let openDialog = null;

function closeDialog() {
  if (openDialog?.open) openDialog.close();
  openDialog?.remove();
  openDialog = null;
}

/** Asks a yes/no question in a modal dialog; resolves true on yes. Escape means no. */
function confirmDialog(title, lines, yesLabel) {
  closeDialog();
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const finish = (answer) => { closeDialog(); opener?.focus?.(); resolve(answer); };
    const no = el('button', { type: 'button', 'data-confirm-no': true, onclick: () => finish(false) }, 'Cancel');
    const yes = el('button', { type: 'button', class: 'primary', 'data-confirm-yes': true, onclick: () => finish(true) }, yesLabel);
    const dialog = el('dialog', { class: 'dialog', 'data-confirm': true, 'aria-labelledby': 'confirm-title' },
      el('h2', { id: 'confirm-title' }, title),
      lines.map((line) => el('p', {}, line)),
      el('div', { class: 'row end' }, no, yes));
    // The browser closes a modal dialog on Escape with a cancel event: answer no.
    dialog.addEventListener('cancel', (event) => { event.preventDefault(); finish(false); });
    document.body.append(dialog);
    openDialog = dialog;
    dialog.showModal();
    no.focus();
  });
}

// ---------------------------------------------------------------------------------------
// Graph: layout (layered, left to right) and rendering, shared by the flow and request pages.

const BOX_W = 176;
const BOX_H = 56;
const GAP_X = 64;
const GAP_Y = 28;
const GROUP_HEAD = 32;
const GROUP_PAD = 14;
const EACH_PAD = 12;
const EACH_HEAD = 20;
const WAYPOINT_H = 8;

const clip = (text, max) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const stripInstance = (path) => path.replace(/\[[^\]]*\]/g, '');

/** Which vertices of `graph` sit in a for-each body (directly or in a nested one). */
function bodyMembers(graph) {
  const inBody = new Set();
  for (const body of graph.each || []) for (const v of body.vertices) inBody.add(v);
  return inBody;
}

/**
 * Lays out `graph` (vertex paths under `prefix`); sub-workflows not in `collapsed` are laid
 * out inside their box. Positions depend on the structure only, never on statuses.
 */
function layoutGraph(graph, prefix, collapsed) {
  const n = graph.vertices.length;
  const out = Array.from({ length: n }, () => []);
  const indeg = new Array(n).fill(0);
  for (const e of graph.edges) { out[e.from].push(e.to); indeg[e.to] += 1; }

  // Layer = longest path from the entry (from any source, for safety), by topological order.
  const layer = new Array(n).fill(0);
  const queue = [];
  for (let i = 0; i < n; i += 1) if (indeg[i] === 0) queue.push(i);
  const seen = new Array(n).fill(false);
  while (queue.length) {
    const v = queue.shift();
    seen[v] = true;
    for (const w of out[v]) {
      layer[w] = Math.max(layer[w], layer[v] + 1);
      indeg[w] -= 1;
      if (indeg[w] === 0) queue.push(w);
    }
  }
  for (let i = 0; i < n; i += 1) if (!seen[i]) layer[i] = 0; // a cycle would be a bug upstream

  // An edge that spans several layers goes through a waypoint in each layer between (ids from
  // n on), which takes part in the ordering like a vertex: so the edge is routed between the
  // boxes of those layers, never across one.
  const chains = graph.edges.map((e) => {
    const chain = [e.from];
    for (let l = layer[e.from] + 1; l < layer[e.to]; l += 1) {
      const id = layer.length;
      layer.push(l);
      out.push([]);
      out[chain[chain.length - 1]].push(id);
      chain.push(id);
    }
    if (chain.length > 1) out[chain[chain.length - 1]].push(e.to);
    chain.push(e.to);
    return chain;
  });
  const total = layer.length;

  // Each vertex's box: a fixed size, or an expanded sub-workflow's laid-out graph.
  const items = graph.vertices.map((v, i) => {
    const path = prefix + v.name;
    const item = { index: i, vertex: v, path, w: BOX_W, h: BOX_H, inner: null };
    if (v.kind === 'flow' && !collapsed.has(path)) {
      item.inner = layoutGraph(v.graph, `${path}/`, collapsed);
      item.w = Math.max(BOX_W, item.inner.w + 2 * GROUP_PAD);
      item.h = item.inner.h + GROUP_HEAD + GROUP_PAD;
    }
    return item;
  });
  for (let id = n; id < total; id += 1) items.push({ index: id, waypoint: true, path: '', w: 0, h: WAYPOINT_H, inner: null });

  // Order within layers: start in index order, then barycenter passes against neighbours.
  const layers = [];
  for (let i = 0; i < total; i += 1) (layers[layer[i]] ||= []).push(i);
  for (let l = 0; l < layers.length; l += 1) layers[l] ||= [];
  const preds = Array.from({ length: total }, () => []);
  out.forEach((targets, from) => targets.forEach((to) => {
    // Edges that span layers are counted through their waypoints only.
    if (from < n && to < n && layer[to] - layer[from] > 1) return;
    preds[to].push(from);
  }));
  const adjacent = out.map((targets, from) => targets.filter((to) => !(from < n && to < n && layer[to] - layer[from] > 1)));
  const pos = new Array(total).fill(0);
  const index = () => layers.forEach((ids) => ids.forEach((id, k) => { pos[id] = k; }));
  index();
  const sortBy = (ids, neighbours) => {
    const key = new Map(ids.map((id) => {
      const ns = neighbours[id];
      return [id, ns.length ? ns.reduce((s, x) => s + pos[x], 0) / ns.length : pos[id]];
    }));
    ids.sort((a, b) => key.get(a) - key.get(b) || a - b);
  };
  for (let pass = 0; pass < 2; pass += 1) {
    for (let l = 1; l < layers.length; l += 1) { sortBy(layers[l], preds); index(); }
    for (let l = layers.length - 2; l >= 0; l -= 1) { sortBy(layers[l], adjacent); index(); }
  }

  // Coordinates: columns left to right, each centred vertically on the tallest.
  const inBody = bodyMembers(graph);
  const columnW = layers.map((ids) => Math.max(0, ...ids.map((id) => items[id].w)));
  const columnH = layers.map((ids) => ids.reduce((s, id, k) => s + items[id].h + (k ? GAP_Y + (inBody.has(id) !== inBody.has(ids[k - 1]) ? EACH_HEAD : 0) : 0), 0));
  const eachTop = (graph.each || []).length ? EACH_HEAD + EACH_PAD : 0;
  const height = Math.max(BOX_H, ...columnH) + 2 * eachTop;
  let x = (graph.each || []).length ? EACH_PAD : 0;
  layers.forEach((ids, l) => {
    let y = (height - columnH[l]) / 2;
    ids.forEach((id, k) => {
      if (k) y += GAP_Y + (inBody.has(id) !== inBody.has(ids[k - 1]) ? EACH_HEAD : 0);
      const item = items[id];
      item.x = x + (columnW[l] - item.w) / 2;
      item.y = y;
      y += item.h;
    });
    x += columnW[l] + GAP_X;
  });
  const width = x - GAP_X + ((graph.each || []).length ? EACH_PAD : 0);

  // For-each boxes: around their vertices and their nested bodies' boxes, innermost first.
  const each = graph.each || [];
  const depth = (b) => (each[b].parent === null || each[b].parent === undefined ? 0 : 1 + depth(each[b].parent));
  const boxes = [];
  const order = each.map((_, b) => b).sort((a, b) => depth(b) - depth(a));
  const boxOf = new Map();
  for (const b of order) {
    const rects = each[b].vertices.map((v) => items[v]).map((it) => ({ x: it.x, y: it.y, w: it.w, h: it.h }));
    each.forEach((child, c) => { if (child.parent === b && boxOf.has(c)) rects.push(boxOf.get(c)); });
    if (!rects.length) continue;
    const x0 = Math.min(...rects.map((r) => r.x)) - EACH_PAD;
    const y0 = Math.min(...rects.map((r) => r.y)) - EACH_PAD - EACH_HEAD;
    const x1 = Math.max(...rects.map((r) => r.x + r.w)) + EACH_PAD;
    const y1 = Math.max(...rects.map((r) => r.y + r.h)) + EACH_PAD;
    const box = { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
    boxOf.set(b, box);
    boxes.push(box);
  }
  const minY = Math.min(0, ...boxes.map((b) => b.y));
  const maxY = Math.max(height, ...boxes.map((b) => b.y + b.h));
  if (minY < 0) { for (const it of items) it.y -= minY; for (const b of boxes) b.y -= minY; }
  return { graph, items, chains, boxes, inBody, w: Math.max(width, BOX_W), h: maxY - minY };
}

/** Draws a layout into `parent` (an SVG group); records each vertex's group in `nodes`. */
function drawLayout(layout, parent, ctx) {
  for (const box of layout.boxes) {
    parent.append(svgEl('g', { class: 'each' },
      svgEl('rect', { x: box.x, y: box.y, width: box.w, height: box.h, rx: 10 }),
      svgEl('text', { x: box.x + 10, y: box.y + 15, class: 'each-label' }, 'for each')));
  }
  const edges = svgEl('g', { class: 'edges' });
  parent.append(edges);
  // Where an edge leaves and enters a box (or passes a waypoint).
  const middle = (it) => it.y + (it.inner ? GROUP_HEAD / 2 + it.h / 2 : it.h / 2);
  layout.graph.edges.forEach((e, k) => {
    const chain = layout.chains[k].map((id) => layout.items[id]);
    const a = chain[0];
    const b = chain[chain.length - 1];
    let d = '';
    for (let i = 0; i + 1 < chain.length; i += 1) {
      const from = chain[i];
      const to = chain[i + 1];
      const fx = from.x + from.w;
      const fy = middle(from);
      const tx = to === b ? to.x - 2 : to.x;
      const ty = middle(to);
      const dx = Math.max(24, (tx - fx) / 2);
      d += `${i ? '' : `M${fx},${fy} `}C${fx + dx},${fy} ${tx - dx},${ty} ${tx},${ty} `;
      // Through a waypoint: straight across its (zero) width.
      if (to.waypoint) d += `L${to.x + to.w},${ty} `;
    }
    edges.append(svgEl('path', {
      class: `edge ${e.kind}`,
      d: d.trim(),
      'marker-end': `url(#${ctx.marker})`,
      'data-edge': `${a.path}->${b.path}`,
    }));
    // The label sits on the edge's first stretch.
    const next = chain[1];
    const x1 = a.x + a.w;
    const y1 = middle(a);
    const x2 = next.x;
    const y2 = middle(next);
    const label = e.variant ?? (e.kind === 'join' && e.port !== null && e.port !== undefined ? `#${e.port}` : null);
    if (label) {
      edges.append(svgEl('text', { class: `edge-label ${e.kind}`, x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, 'text-anchor': 'middle' }, clip(label, 18)));
    }
  });
  for (const item of layout.items) {
    if (item.waypoint) continue;
    // Inside a for-each body (or a sub-workflow that is), a vertex has one instance per item.
    const multi = layout.inBody.has(item.index) || ctx.multi;
    if (item.inner) drawGroup(item, parent, ctx, multi);
    else drawBox(item, parent, ctx, multi);
  }
}

function vertexTitle(item) {
  const v = item.vertex;
  if (v.kind === 'flow') return `${item.path} — sub-workflow ${v.graph.name} (${v.graph.vertices.length} vertices)`;
  const o = v.options || {};
  const bits = [];
  if (o.retries !== undefined) bits.push(`retries ${o.retries}`);
  if (o.timeout_ms) bits.push(`timeout ${formatDuration(o.timeout_ms)}`);
  if (o.backoff_ms) bits.push(`backoff ${formatDuration(o.backoff_ms)}`);
  return `${item.path} — node ${v.node}${bits.length ? ` · ${bits.join(' · ')}` : ''}`;
}

/** A vertex box (a node, or a collapsed sub-workflow with a summary of its statuses). */
function drawBox(item, parent, ctx, multi) {
  const v = item.vertex;
  const sub = v.kind === 'flow' ? `sub-workflow · ${v.graph.vertices.length} vertices` : v.node !== v.name ? v.node : '';
  const counts = svgEl('text', { class: 'counts', x: BOX_W / 2, y: sub ? 48 : 42, 'text-anchor': 'middle' });
  const g = svgEl('g', {
    'data-vertex': item.path, 'data-status': 'none', 'data-kind': v.kind, class: `vertex${multi ? ' multi' : ''}`,
    transform: `translate(${item.x},${item.y})`,
  },
  svgEl('title', {}, vertexTitle(item)),
  svgEl('rect', { class: 'box', width: BOX_W, height: BOX_H, rx: 7 }),
  svgEl('text', { class: 'name', x: BOX_W / 2, y: sub ? 19 : (multi || v.kind === 'flow' ? 24 : 32), 'text-anchor': 'middle' }, clip(v.name, 22)),
  sub ? svgEl('text', { class: 'sub', x: BOX_W / 2, y: 34, 'text-anchor': 'middle' }, clip(sub, 28)) : null,
  counts);
  if (v.kind === 'flow') g.append(toggleButton(item, ctx, true, BOX_W - 24, 4));
  parent.append(g);
  ctx.nodes.set(item.path, { g, counts, multi, flow: v.kind === 'flow' });
}

/** An expanded sub-workflow: a titled frame with its own graph inside. */
function drawGroup(item, parent, ctx, multi) {
  const frame = svgEl('g', { 'data-vertex': item.path, 'data-status': 'none', 'data-kind': 'flow', class: 'group' },
    svgEl('title', {}, vertexTitle(item)),
    svgEl('rect', { class: 'frame', width: item.w, height: item.h, rx: 10 }),
    svgEl('text', { class: 'group-title', x: 12, y: 20 }, clip(`${item.vertex.name} · ${item.vertex.graph.name}`, Math.floor((item.w - 50) / 7.5))));
  frame.append(toggleButton(item, ctx, false, item.w - 26, 6));
  const inner = svgEl('g', { transform: `translate(${GROUP_PAD + (item.w - 2 * GROUP_PAD - item.inner.w) / 2},${GROUP_HEAD})` });
  const wrapper = svgEl('g', { class: 'subflow', transform: `translate(${item.x},${item.y})` }, frame, inner);
  parent.append(wrapper);
  ctx.nodes.set(item.path, { g: frame, counts: null, multi: false, flow: true });
  const multiBefore = ctx.multi;
  ctx.multi = multi;
  drawLayout(item.inner, inner, ctx);
  ctx.multi = multiBefore;
}

/** A real <button> (in a foreignObject) that collapses or expands a sub-workflow. */
function toggleButton(item, ctx, collapsed, x, y) {
  const fo = svgEl('foreignObject', { x, y, width: 20, height: 20, class: 'toggle-fo' });
  fo.append(el('button', {
    type: 'button', class: 'toggle', 'data-toggle': item.path, 'aria-expanded': String(!collapsed),
    'aria-label': `${collapsed ? 'Expand' : 'Collapse'} ${item.path}`, title: collapsed ? 'Expand' : 'Collapse',
    onclick: () => ctx.toggle(item.path),
  }, collapsed ? '+' : '−'));
  return fo;
}

let graphIds = 0;

/**
 * The graph view: an <svg data-graph> inside a horizontal scroller. `setStatuses(instances)`
 * colours it from a request's vertex instances (path → {status}); without a call every vertex
 * has data-status="none" (the flow page).
 */
function graphView(graph) {
  const collapsed = new Set();
  const scroller = el('div', { class: 'graph-scroll' });
  let nodes = new Map();
  let lastInstances = null;
  const draw = (focusPath) => {
    graphIds += 1;
    const layout = layoutGraph(graph, '', collapsed);
    const marker = `arrow-${graphIds}`;
    const svg = svgEl('svg', {
      'data-graph': graph.name, viewBox: `-8 -8 ${layout.w + 16} ${layout.h + 16}`, role: 'img',
      'aria-label': `Graph of ${graph.name}`, preserveAspectRatio: 'xMidYMin meet',
    });
    // Readable sizes: never smaller than 70 % of the natural size (the scroller scrolls), never
    // blown up more than 1.1 × for small graphs.
    svg.style.width = '100%';
    svg.style.minWidth = `${Math.round((layout.w + 16) * 0.7)}px`;
    svg.style.maxWidth = `${Math.round((layout.w + 16) * 1.1)}px`;
    svg.append(svgEl('defs', {}, svgEl('marker', {
      // In user units: thick (scatter/gather) edges keep the same arrowhead.
      id: marker, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 10, markerHeight: 10, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse', class: 'arrow',
    }, svgEl('path', { d: 'M0,0 L10,5 L0,10 z' }))));
    const root = svgEl('g');
    svg.append(root);
    const ctx = { nodes: new Map(), marker, multi: false, toggle };
    drawLayout(layout, root, ctx);
    nodes = ctx.nodes;
    scroller.replaceChildren(svg);
    if (lastInstances) apply(lastInstances);
    if (focusPath) $(`[data-toggle="${CSS.escape(focusPath)}"]`, svg)?.focus();
  };
  function toggle(path) {
    if (collapsed.has(path)) collapsed.delete(path); else collapsed.add(path);
    draw(path);
  }
  const apply = (instances) => {
    lastInstances = instances;
    const summary = summarize(instances);
    for (const [path, node] of nodes) {
      const mine = node.flow ? summary.under(path) : summary.of(path);
      let status;
      let text = '';
      if (!mine.length) {
        status = 'pending';
        if (node.multi) text = 'no items yet';
      } else if (mine.length === 1 && !node.multi && !node.flow) {
        status = mine[0];
      } else {
        status = worst(mine);
        text = countsText(mine);
      }
      node.g.setAttribute('data-status', status);
      if (node.counts) node.counts.textContent = text;
    }
  };
  draw();
  return { element: scroller, setStatuses: apply };
}

/** Indexes instance statuses by graph vertex path (instance suffixes `[..]` stripped). */
function summarize(instances) {
  const byVertex = new Map();
  for (const [path, inst] of instances) {
    const key = stripInstance(path);
    if (!byVertex.has(key)) byVertex.set(key, []);
    byVertex.get(key).push(inst.status);
  }
  return {
    of: (path) => byVertex.get(path) || [],
    under: (path) => [...byVertex].filter(([k]) => k.startsWith(`${path}/`)).flatMap(([, v]) => v),
  };
}

const worst = (statuses) => WORST_FIRST.find((s) => statuses.includes(s)) || statuses[0];

function countsText(statuses) {
  const counts = new Map();
  for (const s of statuses) counts.set(s, (counts.get(s) || 0) + 1);
  const order = [...COUNT_ORDER, ...[...counts.keys()].filter((s) => !COUNT_ORDER.includes(s))];
  return order.filter((s) => counts.has(s)).map((s) => `${counts.get(s)} ${s}`).join(' · ');
}

// ---------------------------------------------------------------------------------------
// Overview

async function overview(root, signal) {
  document.title = 'goflow';
  const body = await api('/flows', { signal });
  updateHeader(body.engine);
  engineAsked = true;
  const cards = el('div', { class: 'cards' });
  const workers = el('section', { class: 'card workers', 'data-workers': true, 'aria-labelledby': 'workers-title' },
    el('h2', { id: 'workers-title' }, 'Workers'));
  mount(root, 
    el('div', { class: 'page-head' }, el('h1', {}, 'Flows'), el('span', { class: 'muted' }, `${body.flows.length} flow${body.flows.length === 1 ? '' : 's'} · engine ${body.engine} · refreshed every 5 s`)),
    cards, workers);
  if (!body.flows.length) cards.append(el('p', { class: 'muted' }, 'This service runs no flow.'));
  const refreshers = body.flows.map((flow) => {
    const card = flowCard(flow);
    cards.append(card.element);
    const w = workersBlock(flow);
    workers.append(w.element);
    return async () => { await Promise.all([card.refresh(signal), w.refresh(signal)]); };
  });
  const refreshAll = async () => {
    // Each flow on its own: one failing flow does not blank the others.
    const results = await Promise.allSettled(refreshers.map((r) => r()));
    for (const r of results) if (r.status === 'rejected') report(r.reason);
  };
  await refreshAll();
  every(5000, refreshAll, signal);
}

function flowCard(flow) {
  const count = {};
  const stats = el('dl', { class: 'counts' }, REQUEST_STATUSES.map((s) => {
    count[s] = el('dd', { class: 'num', 'data-count': s }, '–');
    return el('div', { class: 'count', 'data-status': s }, el('dt', {}, s), count[s]);
  }));
  const throughput = el('span', { class: 'num', 'data-throughput': true }, '–');
  const failureRate = el('span', { class: 'num', 'data-failure-rate': true }, '–');
  const element = el('article', { class: 'card flow-card', 'data-flow-card': flow.name },
    el('div', { class: 'card-head' },
      el('h2', {}, el('a', { href: flowHref(flow.name) }, flow.name)),
      el('span', { class: 'muted small', title: `structural hash ${flow.hash}` }, `${flow.vertices} vert${flow.vertices === 1 ? 'ex' : 'ices'}`)),
    el('p', { class: 'desc', title: flow.description || '' }, flow.description || 'No description.'),
    stats,
    el('div', { class: 'hour' },
      el('span', { class: 'muted' }, 'Last hour:'),
      el('span', { title: 'requests created per minute over the last hour' }, throughput, ' req/min'),
      el('span', { title: 'failed / (completed + failed + stopped), requests created over the last hour' }, 'failure rate ', failureRate)));
  const refresh = async (signal) => {
    const [all, hour] = await Promise.all([
      api(`${flowPath(flow.name)}/requests/counts`, { signal }),
      api(`${flowPath(flow.name)}/requests/counts?since=${Date.now() - 3_600_000}`, { signal }),
    ]);
    for (const s of REQUEST_STATUSES) count[s].textContent = String(all[s] ?? 0);
    const total = REQUEST_STATUSES.reduce((sum, s) => sum + (hour[s] || 0), 0);
    throughput.textContent = (total / 60).toFixed(total && total < 60 ? 2 : 1);
    const ended = (hour.completed || 0) + (hour.failed || 0) + (hour.stopped || 0);
    failureRate.textContent = ended ? `${((100 * (hour.failed || 0)) / ended).toFixed(1)} %` : '–';
  };
  return { element, refresh };
}

function workersBlock(flow) {
  const lag = el('span', { class: 'num', 'data-lag': true }, '–');
  const tbody = el('tbody');
  const element = el('div', { class: 'workers-flow', 'data-workers-flow': flow.name },
    el('h3', {}, el('a', { href: flowHref(flow.name) }, flow.name), el('span', { class: 'muted small' }, ' · lag ', lag)),
    el('div', { class: 'table-wrap' }, el('table', { class: 'table compact' },
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Worker'), el('th', { scope: 'col' }, 'Version'), el('th', { scope: 'col', class: 'r' }, 'In flight'), el('th', { scope: 'col', class: 'r' }, 'Last seen'))),
      tbody)));
  const refresh = async (signal) => {
    const body = await api(`${flowPath(flow.name)}/workers`, { signal });
    lag.textContent = body.lag === null || body.lag === undefined ? 'n/a' : String(body.lag);
    lag.title = 'entries not yet read by any worker';
    const rows = body.workers.map((w) => el('tr', { 'data-worker': w.name },
      el('td', { 'data-label': 'Worker' }, w.name),
      el('td', { class: 'id', 'data-label': 'Version', title: w.version === flow.version ? 'the version this service submits' : 'another version of the graph' }, w.version === flow.version ? w.version : `${w.version} (other)`),
      el('td', { class: 'r num', 'data-label': 'In flight' }, String(w.in_flight)),
      el('td', { class: 'r num', 'data-label': 'Last seen' }, w.idle_ms === null || w.idle_ms === undefined ? '–' : relative(Date.now() - w.idle_ms))));
    tbody.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 4, class: 'muted' }, 'No worker reads this flow.'))]));
  };
  return { element, refresh };
}

// ---------------------------------------------------------------------------------------
// Flow page

const SINCE_CHOICES = [['', 'All time'], ['900000', 'Last 15 min'], ['3600000', 'Last hour'], ['86400000', 'Last 24 h']];

async function flowPage(root, signal, name) {
  document.title = `${name} · goflow`;
  const flow = await api(flowPath(name), { signal });
  loadEngine(signal);
  const state = { tab: 'all', since: '', cursors: [null], next: null, trimmed: false, rows: new Map(), deadCursors: [null] };
  const sinceMs = () => (state.since ? Date.now() - Number(state.since) : null);

  const graph = graphView(flow.graph);
  const tabs = {};
  const tabBar = el('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Requests by status' },
    ['all', ...REQUEST_STATUSES].map((s) => {
      const count = el('span', { class: 'tab-count num', 'data-tab-count': s }, '–');
      tabs[s] = el('button', { type: 'button', role: 'tab', 'data-tab': s, 'data-status': s, 'aria-selected': String(s === 'all'), 'aria-pressed': String(s === 'all'), onclick: () => selectTab(s) }, el('span', {}, s), count);
      return tabs[s];
    }));
  const since = el('select', { id: 'since', 'aria-label': 'Created' }, SINCE_CHOICES.map(([v, label]) => el('option', { value: v }, label)));
  since.addEventListener('change', () => { state.since = since.value; reload(); });
  const search = el('input', { id: 'search', type: 'search', placeholder: 'Go to request id…', 'aria-label': 'Go to a request by id', autocomplete: 'off', spellcheck: 'false' });
  search.addEventListener('keydown', guard(async (event) => {
    if (event.key !== 'Enter') return;
    const id = search.value.trim();
    if (!id) return;
    await api(requestPath(name, id), { signal }); // 404 unknown_request → the banner says so
    location.hash = requestHref(name, id);
  }));
  const bulk = READ_ONLY ? null : el('div', { class: 'bulk', role: 'group', 'aria-label': 'Actions on every request of the current tab and time filter' },
    el('span', { class: 'muted small' }, 'All matching:'),
    ['retry', 'pause', 'resume', 'stop'].map((a) => el('button', { type: 'button', 'data-bulk': a, onclick: guard(() => bulkAction(a)) }, a)));

  const tbody = el('tbody');
  const table = el('table', { class: 'table requests' },
    el('thead', {}, el('tr', {}, ['Request', 'Status', 'Created', 'Duration', 'Failure'].map((h) => el('th', { scope: 'col' }, h)))),
    tbody);
  const prev = el('button', { type: 'button', id: 'prev-page', onclick: () => { state.cursors.pop(); loadList().catch(report); } }, '← Previous');
  const next = el('button', { type: 'button', id: 'next-page', onclick: guard(nextPage) }, 'Next →');
  const pageInfo = el('span', { class: 'muted small num' });

  mount(root, 
    el('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, el('a', { href: '#/' }, 'Flows'), ' / ', el('span', {}, name)),
    el('div', { class: 'page-head' }, el('h1', {}, flow.name), el('span', { class: 'muted' }, `${flow.graph.vertices.length} vert${flow.graph.vertices.length === 1 ? 'ex' : 'ices'} · version ${flow.version ?? flow.graph.hash}`)),
    flow.description ? el('p', { class: 'desc' }, flow.description) : null,
    el('section', { class: 'card', 'aria-label': 'Graph' }, graph.element),
    el('section', { class: 'card', 'aria-labelledby': 'requests-title' },
      el('div', { class: 'section-head' }, el('h2', { id: 'requests-title' }, 'Requests'), el('span', { class: 'live', title: 'updated live' }, 'live')),
      tabBar,
      el('div', { class: 'toolbar' }, since, search, bulk),
      el('div', { class: 'table-wrap' }, table),
      el('div', { class: 'pager' }, prev, pageInfo, next)),
    READ_ONLY ? null : submitForm(name, flow.input_schema, signal),
    versionsPanel(name, signal, markVersions),
    deadLetters(name, signal));

  function selectTab(s) {
    state.tab = s;
    for (const [k, b] of Object.entries(tabs)) { b.setAttribute('aria-selected', String(k === s)); b.setAttribute('aria-pressed', String(k === s)); }
    reload();
  }

  function reload() {
    state.cursors = [null];
    loadList().catch(report);
    refreshCounts();
  }

  function listQuery(extra = {}) {
    const q = new URLSearchParams();
    if (state.tab !== 'all') q.set('status', state.tab);
    const s = sinceMs();
    if (s) q.set('since', String(s));
    for (const [k, v] of Object.entries(extra)) if (v !== null && v !== undefined) q.set(k, v);
    return q.toString();
  }

  // The first page keeps PAGE_SIZE rows however fast requests arrive; once live rows have
  // pushed some off it, the next page starts after the rows shown, not after the old last row.
  async function nextPage() {
    if (state.trimmed) {
      const fresh = await api(`${flowPath(name)}/requests?${listQuery({ limit: PAGE_SIZE })}`, { signal });
      state.next = fresh.next_cursor;
      state.trimmed = false;
      if (!state.next) { next.disabled = true; return; }
    }
    state.cursors.push(state.next);
    await loadList();
  }

  async function loadList() {
    state.trimmed = false;
    const cursor = state.cursors[state.cursors.length - 1];
    const body = await api(`${flowPath(name)}/requests?${listQuery({ limit: PAGE_SIZE, cursor })}`, { signal });
    state.next = body.next_cursor;
    // Rows the stream added while this page loaded, and that the answer misses, stay on top.
    const listed = new Set(body.requests.map((r) => r.request_id));
    const live = state.cursors.length > 1 ? [] : [...tbody.querySelectorAll('tr.fresh')]
      .filter((tr) => !listed.has(tr.dataset.request) && (state.tab === 'all' || tr.dataset.status === state.tab));
    const kept = new Map(live.map((tr) => [tr.dataset.request, state.rows.get(tr.dataset.request)]));
    state.rows = kept;
    tbody.replaceChildren(...live, ...body.requests.map((r) => requestRow(r)));
    if (!tbody.children.length) tbody.append(emptyRow());
    prev.disabled = state.cursors.length <= 1;
    next.disabled = !state.next;
    pageInfo.textContent = `Page ${state.cursors.length}`;
  }

  const emptyRow = () => el('tr', { class: 'empty' }, el('td', { colspan: 5, class: 'muted' }, 'No request matches.'));

  // A request of another version than this service's is marked so, and as waiting while no
  // worker of its version is alive (known from the versions panel's last load, in
  // `state.workers`: version → whether a worker of it is alive).
  function versionMark(r) {
    if (!r.version || r.version === flow.version) return null;
    const open = !ENDED.has(r.status);
    const waiting = open && state.workers && !state.workers.get(r.version);
    return el('span', { class: 'tag', 'data-old-version': r.version, 'data-waiting': waiting ? 'true' : null,
      title: waiting ? `waiting for a worker of version ${r.version}` : `version ${r.version}` },
    waiting ? 'waiting: old version' : 'old version');
  }
  function remark(row) {
    row.mark?.remove();
    row.mark = versionMark(row.summary);
    if (row.mark) row.status.after(' ', row.mark);
  }
  function markVersions(versions) {
    state.workers = new Map(versions.map((v) => [v.version, v.alive]));
    for (const row of state.rows.values()) remark(row);
  }

  function requestRow(r) {
    const status = badge(r.status);
    const mark = versionMark(r);
    const duration = durationEl(r.created_at_ms, r.ended_at_ms);
    const failure = el('td', { class: 'failure', 'data-label': 'Failure', title: requestFailureText(r.failure) }, requestFailureText(r.failure));
    const tr = el('tr', { 'data-request': r.request_id, 'data-status': r.status },
      el('td', { class: 'id', 'data-label': 'Request' }, el('a', { href: requestHref(name, r.request_id) }, r.request_id)),
      el('td', { 'data-label': 'Status' }, status, mark ? ' ' : null, mark),
      el('td', { 'data-label': 'Created' }, timeEl(r.created_at_ms)),
      el('td', { class: 'num', 'data-label': 'Duration' }, duration),
      failure);
    state.rows.set(r.request_id, { tr, status, duration, failure, created: r.created_at_ms, summary: r, mark });
    return tr;
  }

  // Live: new requests appear on the first page, rows change in place, counts follow.
  const refreshCounts = throttle(async () => {
    const s = sinceMs();
    const counts = await api(`${flowPath(name)}/requests/counts${s ? `?since=${s}` : ''}`, { signal });
    let total = 0;
    for (const st of REQUEST_STATUSES) { total += counts[st] || 0; $(`[data-tab-count="${st}"]`, tabBar).textContent = String(counts[st] || 0); }
    $('[data-tab-count="all"]', tabBar).textContent = String(total);
  }, 1000, signal);

  // The failures of rows that failed live, read once a second for the rows still shown (an
  // event says that a request failed, not why): a burst of failures costs a page's worth of
  // reads, not one per event.
  const failedLive = new Set();
  const fillFailures = throttle(async () => {
    const ids = [...failedLive].filter((id) => state.rows.has(id));
    failedLive.clear();
    await Promise.all(ids.map(async (id) => {
      const r = await api(requestPath(name, id), { signal });
      const row = state.rows.get(id);
      if (row && r.failure) { row.failure.textContent = requestFailureText(r.failure); row.failure.title = row.failure.textContent; }
    }));
  }, 1000, signal);
  const fillFailure = (id) => { failedLive.add(id); fillFailures(); };

  /** Drops the rows past a page's worth from the bottom of the first page. */
  function trim() {
    const rows = tbody.querySelectorAll('tr[data-request]');
    for (let k = PAGE_SIZE; k < rows.length; k += 1) {
      state.rows.delete(rows[k].dataset.request);
      rows[k].remove();
      state.trimmed = true;
    }
    if (state.trimmed) next.disabled = false;
  }

  function onRequestEvent(e) {
    const row = state.rows.get(e.request_id);
    if (row) {
      row.tr.setAttribute('data-status', e.status);
      setBadge(row.status, e.status);
      setDuration(row.duration, row.created, ENDED.has(e.status) ? e.at_ms : null);
      row.summary.status = e.status;
      remark(row);
      if (e.status === 'failed') fillFailure(e.request_id);
      else if (!ENDED.has(e.status)) { row.failure.textContent = ''; row.failure.title = ''; }
    } else if (state.cursors.length === 1 && (state.tab === 'all' || state.tab === e.status)) {
      $('tr.empty', tbody)?.remove();
      const tr = requestRow({ request_id: e.request_id, status: e.status, created_at_ms: e.at_ms, ended_at_ms: ENDED.has(e.status) ? e.at_ms : null });
      tr.classList.add('fresh');
      tbody.prepend(tr);
      trim();
      if (e.status === 'failed') fillFailure(e.request_id);
    }
    refreshCounts();
  }

  async function bulkAction(action) {
    const filter = {};
    if (state.tab !== 'all') filter.status = [state.tab];
    const s = sinceMs();
    if (s) filter.since = s;
    const what = `${state.tab === 'all' ? 'every request' : `every ${state.tab} request`}${s ? ` created since ${new Date(s).toLocaleString()}` : ''}`;
    const ok = await confirmDialog(`${action[0].toUpperCase()}${action.slice(1)} ${what} of ${name}?`,
      ['Requests this action does not apply to are skipped and listed.'], `${action[0].toUpperCase()}${action.slice(1)}`);
    if (!ok) return;
    const out = await api(`${flowPath(name)}/requests/actions/${action}`, { method: 'POST', body: filter, signal });
    const skipped = out.skipped || [];
    showBanner(`${action}: ${out.matched} matched, ${out.applied} applied, ${skipped.length} skipped.`, 'info',
      skipped.slice(0, 5).map((x) => `${x.request_id}: ${x.reason}`).concat(skipped.length > 5 ? [`… and ${skipped.length - 5} more`] : []));
    reload();
  }

  follow(`${flowPath(name)}/events`, { signal, onEvent: (type, data) => { if (type === 'request') onRequestEvent(data); } });
  await loadList();
  refreshCounts();
}

/** A skeleton input from a JSON Schema: its properties with empty values of their types. */
function skeleton(schema) {
  if (!schema || typeof schema !== 'object') return {};
  const empty = { string: '', number: 0, integer: 0, boolean: false, array: [], object: {}, null: null };
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  if (type === 'object' || schema.properties) {
    const out = {};
    for (const [key, prop] of Object.entries(schema.properties || {})) out[key] = prop && (prop.properties || prop.type === 'object') ? skeleton(prop) : prop && prop.type ? (empty[Array.isArray(prop.type) ? prop.type[0] : prop.type] ?? null) : null;
    return out;
  }
  if (type in empty) return empty[type];
  return {};
}

function submitForm(name, schema, signal) {
  const input = el('textarea', { id: 'submit-input', rows: 5, spellcheck: 'false', 'aria-label': 'Input (JSON)' });
  input.value = pretty(skeleton(schema));
  const form = el('form', { id: 'submit-form', class: 'card' },
    el('h2', {}, 'New request'),
    el('label', { for: 'submit-input' }, 'Input (JSON)'),
    input,
    el('div', { class: 'row' }, el('button', { type: 'submit', class: 'primary' }, 'Submit')));
  form.addEventListener('submit', guard(async (event) => {
    event.preventDefault();
    try { JSON.parse(input.value); } catch (error) { showError(`The input is not JSON: ${error.message}`); return; }
    const button = $('button[type=submit]', form);
    button.disabled = true;
    try {
      const out = await api(flowPath(name), { method: 'POST', body: input.value, signal });
      location.hash = requestHref(name, out.request_id);
    } finally {
      button.disabled = false;
    }
  }));
  return form;
}

/**
 * The versions of the flow's graph: this service's, and the older builds' whose requests are
 * under way (draining) or done (drained, which can be forgotten once their workers are gone).
 */
function versionsPanel(name, signal, onLoad) {
  const tbody = el('tbody');
  const section = el('section', { class: 'card', 'data-versions': true, 'aria-labelledby': 'versions-title' },
    el('h2', { id: 'versions-title' }, 'Versions'),
    el('p', { class: 'muted small' }, 'Each request runs on the version of the graph it was submitted on, on workers that have it. A request of an old version can be migrated to this one from its page, where its progress carries over.'),
    el('div', { class: 'table-wrap' }, el('table', { class: 'table compact' },
      el('thead', {}, el('tr', {}, ['Version', 'State', 'Under way', 'Workers', ''].map((h) => el('th', { scope: 'col' }, h)))),
      tbody)));
  const load = async () => {
    const body = await api(`${flowPath(name)}/versions`, { signal });
    onLoad?.(body.versions);
    tbody.replaceChildren(...body.versions.map((v) => {
      const forget = READ_ONLY || v.state !== 'drained' || v.workers.length ? null
        : el('button', { type: 'button', class: 'small', 'data-forget-version': v.version, onclick: guard(async () => {
          const ok = await confirmDialog(`Forget version ${v.version} of ${name}?`, ['It has no request under way and no worker.'], 'Forget');
          if (!ok) return;
          await api(`${flowPath(name)}/versions/${encodeURIComponent(v.version)}`, { method: 'DELETE', signal });
          await load();
        }) }, 'Forget');
      return el('tr', { 'data-version-row': v.version, 'data-state': v.state },
        el('td', { class: 'id', 'data-label': 'Version' }, v.version),
        el('td', { 'data-label': 'State' }, v.state),
        el('td', { class: 'num', 'data-label': 'Under way' }, String(v.open)),
        el('td', { class: 'num', 'data-label': 'Workers' }, String(v.workers.length)),
        el('td', {}, forget));
    }));
  };
  load().catch(report);
  every(10_000, () => load().catch(report), signal);
  return section;
}

function deadLetters(name, signal) {
  const cursors = [null];
  let nextCursor = null;
  const tbody = el('tbody');
  const prev = el('button', { type: 'button', id: 'dead-prev', onclick: () => { cursors.pop(); load().catch(report); } }, '← Previous');
  const next = el('button', { type: 'button', id: 'dead-next', onclick: () => { cursors.push(nextCursor); load().catch(report); } }, 'Next →');
  const section = el('section', { class: 'card', 'data-dead': true, 'aria-labelledby': 'dead-title' },
    el('h2', { id: 'dead-title' }, 'Dead letters'),
    el('p', { class: 'muted small' }, 'Requests that failed for good, newest first.'),
    el('div', { class: 'table-wrap' }, el('table', { class: 'table' },
      el('thead', {}, el('tr', {}, ['When', 'Request', 'Vertex', 'Attempts', 'Failure'].map((h) => el('th', { scope: 'col' }, h)))),
      tbody)),
    el('div', { class: 'pager' }, prev, next));
  async function load() {
    const cursor = cursors[cursors.length - 1];
    const body = await api(`${flowPath(name)}/dead?limit=${PAGE_SIZE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { signal });
    nextCursor = body.next_cursor;
    tbody.replaceChildren(...body.dead.map((d) => el('tr', { 'data-dead-request': d.request_id },
      el('td', { 'data-label': 'When' }, timeEl(d.at_ms)),
      el('td', { class: 'id', 'data-label': 'Request' }, el('a', { href: requestHref(name, d.request_id) }, d.request_id)),
      el('td', { 'data-label': 'Vertex' }, d.failure?.vertex ?? '–'),
      el('td', { class: 'num', 'data-label': 'Attempts' }, String(d.failure?.attempts ?? '–')),
      el('td', { class: 'failure', 'data-label': 'Failure', title: failureText(d.failure?.failure) }, failureText(d.failure?.failure)))));
    if (!body.dead.length) tbody.append(el('tr', { class: 'empty' }, el('td', { colspan: 5, class: 'muted' }, 'No dead letter.')));
    prev.disabled = cursors.length <= 1;
    next.disabled = !nextCursor;
  }
  load().catch(report);
  return section;
}

// ---------------------------------------------------------------------------------------
// Request page

async function requestPage(root, signal, name, id) {
  document.title = `${id} · ${name} · goflow`;
  const flow = await api(flowPath(name), { signal });
  loadEngine(signal);
  const instances = new Map(); // vertex path → instance, from the state and then events
  const retryMarks = []; // when this page saw the request start again after it had ended
  let request = null;
  let streaming = false;

  const statusBadge = badge('queued', { 'data-request-status': true });
  const liveTag = el('span', { class: 'live', title: 'updated live', hidden: true }, 'live');
  const fields = {
    created: el('dd', { 'data-created': true }), ended: el('dd', { 'data-ended': true }),
    duration: el('dd', { class: 'num', 'data-duration': true }), retries: el('dd', { class: 'num', 'data-retries': true }),
    trace: el('code', { 'data-trace-id': true }),
    version: el('dd', { class: 'id', 'data-version': true }),
  };
  // What holds the request back, when something outside it does (no worker of its version).
  const waiting = el('p', { class: 'notice', 'data-waiting-for': true, role: 'status', hidden: true });
  // A link to the trace in the tracing UI, when the service knows where that is.
  const traceLink = el('a', { class: 'small', target: '_blank', rel: 'noopener noreferrer', 'data-trace-link': true, hidden: true }, 'Open trace');
  const copy = el('button', { type: 'button', class: 'ghost small', 'data-copy-trace': true, onclick: guard(() => copyText(fields.trace.textContent)) }, 'Copy');
  const actions = el('div', { class: 'actions', role: 'group', 'aria-label': 'Request actions' });
  const failureBox = el('div', { class: 'request-failure', 'data-request-failure': true, hidden: true });
  let graph = graphView(flow.graph);
  // The graph drawn is that of the request's version: for a request of an old version, that
  // build's, as the versions list has it (its vertices are another graph's), once known.
  let drawnVersion = flow.version;
  const drawVersion = guard(async (version) => {
    if (!version || version === drawnVersion) return;
    drawnVersion = version;
    let source = version === flow.version ? flow.graph : null;
    if (!source) {
      const body = await api(`${flowPath(name)}/versions`, { signal });
      source = body.versions.find((v) => v.version === version)?.graph;
    }
    if (!source || drawnVersion !== version) return;
    const fresh = graphView(source);
    graph.element.replaceWith(fresh.element);
    graph = fresh;
    graph.setStatuses(instances);
  });
  const gantt = el('div', { class: 'gantt', 'data-gantt': true, role: 'table', 'aria-label': 'Timeline of vertex instances' });
  const inputPre = el('pre', { class: 'json', 'data-input': true }, '…');
  const outputPre = el('pre', { class: 'json', 'data-final-output': true }, '…');
  const failures = el('div', { class: 'failures' });
  const outputs = el('div', { class: 'outputs' });
  const outputDetails = new Map();

  mount(root, 
    el('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, el('a', { href: '#/' }, 'Flows'), ' / ', el('a', { href: flowHref(name) }, name), ' / ', el('span', {}, 'request')),
    el('div', { class: 'page-head' }, el('h1', { class: 'id' }, id), statusBadge, liveTag),
    el('section', { class: 'card summary' },
      el('dl', { class: 'facts' },
        el('div', {}, el('dt', {}, 'Created'), fields.created),
        el('div', {}, el('dt', {}, 'Ended'), fields.ended),
        el('div', {}, el('dt', {}, 'Duration'), fields.duration),
        el('div', {}, el('dt', {}, 'Retries'), fields.retries),
        el('div', {}, el('dt', {}, 'Version'), fields.version),
        el('div', { class: 'trace' }, el('dt', {}, 'Trace id'), el('dd', {}, fields.trace, ' ', copy, ' ', traceLink))),
      waiting,
      READ_ONLY ? null : actions,
      failureBox),
    el('section', { class: 'card', 'aria-label': 'Graph' }, graph.element),
    el('section', { class: 'card', 'aria-labelledby': 'timeline-title' }, el('h2', { id: 'timeline-title' }, 'Timeline'), gantt),
    el('section', { class: 'card', 'aria-labelledby': 'failures-title' }, el('h2', { id: 'failures-title' }, 'Failures'), failures),
    el('div', { class: 'two' },
      el('section', { class: 'card', 'aria-labelledby': 'input-title' }, el('h2', { id: 'input-title' }, 'Input'), inputPre),
      el('section', { class: 'card', 'aria-labelledby': 'output-title' }, el('h2', { id: 'output-title' }, 'Output'), outputPre)),
    el('section', { class: 'card', 'aria-labelledby': 'outputs-title' }, el('h2', { id: 'outputs-title' }, 'Vertex outputs'), outputs));

  // --- status and facts
  function setStatus(status, atMs) {
    const before = request?.status;
    if (request) {
      request.status = status;
      if (ENDED.has(status) && !request.finished_at_ms && atMs) request.finished_at_ms = atMs;
      if (!ENDED.has(status)) request.finished_at_ms = null;
    }
    if (before && ENDED.has(before) && !ENDED.has(status)) retryMarks.push(atMs || Date.now());
    setBadge(statusBadge, status);
    liveTag.hidden = ENDED.has(status);
    renderFacts();
    renderActions();
    if (!ENDED.has(status)) startStream();
  }

  function renderFacts() {
    if (!request) return;
    fields.created.replaceChildren(timeEl(request.created_at_ms));
    fields.ended.replaceChildren(request.finished_at_ms && ENDED.has(request.status) ? timeEl(request.finished_at_ms) : el('span', { class: 'muted' }, '–'));
    fields.duration.replaceChildren(durationEl(request.created_at_ms, ENDED.has(request.status) ? request.finished_at_ms || request.updated_at_ms : null));
    fields.retries.textContent = String(request.retries ?? 0);
    fields.version.textContent = request.version || '–';
    fields.version.title = request.version === flow.version ? 'the version this service runs' : 'another version of the graph than this service\'s';
    waiting.hidden = !request.waiting_for || ENDED.has(request.status);
    waiting.textContent = request.waiting_for ? `Waiting for a worker of ${request.waiting_for}: it runs as soon as one starts.` : '';
    fields.trace.textContent = request.trace_id || 'none';
    copy.hidden = !request.trace_id;
    // Only an http(s) address is linked: the template is the operator's, the id the engine's.
    const traceHref = TRACE_URL && request.trace_id
      ? TRACE_URL.replaceAll('{trace_id}', encodeURIComponent(request.trace_id)) : '';
    traceLink.hidden = !/^https?:\/\//i.test(traceHref);
    if (!traceLink.hidden) traceLink.href = traceHref;
    failureBox.hidden = !request.failure;
    failureBox.textContent = request.failure ? `Failed at ${requestFailureText(request.failure)}` : '';
  }

  // Actions answered so far; a state fetched across one is stale (see `refetch`).
  let acted = 0;

  function renderActions() {
    if (READ_ONLY || !request) return;
    const s = request.status;
    const offer = [];
    if (s === 'queued' || s === 'running') offer.push(['pause', 'Pause', '/pause']);
    if (s === 'paused') offer.push(['resume', 'Resume', '/resume']);
    if (s === 'queued' || s === 'running' || s === 'paused') offer.push(['stop', 'Stop', '/stop']);
    if (s === 'failed' || s === 'stopped') offer.push(['retry', 'Retry failed', '/retry'], ['retry-from-start', 'Retry from start', '/retry?from=start']);
    // Another version's request moves to this service's, where its progress carries over (the
    // service answers 409, naming the vertex, where it does not).
    if (s !== 'completed' && request.version && request.version !== flow.version) offer.push(['migrate', 'Migrate to this version', '/migrate']);
    // A completed request takes no action ever: no empty bar kept for it.
    actions.hidden = s === 'completed';
    const have = [...actions.children].map((b) => b.dataset.action).join();
    if (have === offer.map((o) => o[0]).join()) return; // unchanged: keep focus where it is
    actions.replaceChildren(...offer.map(([key, label, suffix]) => el('button', {
      type: 'button', 'data-action': key, class: key === 'stop' ? 'danger' : '',
      onclick: guard(async (event) => {
        const button = event.currentTarget;
        for (const b of actions.children) b.disabled = true;
        try {
          const out = await api(`${requestPath(name, id)}${suffix}`, { method: 'POST', signal });
          acted += 1;
          if (out.moved) {
            // Its vertices are numbered by this service's graph now, and its version is this one.
            request.version = out.to;
            showBanner(`Migrated to version ${out.to}.`, 'info');
          }
          setStatus(out.status, Date.now());
          refetch();
        } finally {
          for (const b of actions.children) b.disabled = false;
          if (button.isConnected) button.focus();
        }
      }),
    }, label)));
  }

  // --- full state and data, at most every 500 ms
  const refetch = throttle(async () => {
    const before = acted;
    const [state, data] = await Promise.all([
      api(requestPath(name, id), { signal }),
      api(`${requestPath(name, id)}/data`, { signal }),
    ]);
    // A state read while an action was on its way may predate it (a pause read back after the
    // resume): drop it rather than flicker back; the action asked for a fresh one.
    if (before !== acted) return;
    applyState(state);
    applyData(data);
  }, 500, signal);

  function applyState(state) {
    const wasEnded = request && ENDED.has(request.status);
    request = state;
    instances.clear();
    for (const v of state.vertices) instances.set(v.vertex, { ...v });
    setBadge(statusBadge, state.status);
    liveTag.hidden = ENDED.has(state.status);
    renderFacts();
    renderActions();
    drawVersion(state.version);
    graph.setStatuses(instances);
    renderGantt();
    renderFailures();
    if (!ENDED.has(state.status) && (wasEnded || !streaming)) startStream();
  }

  function applyData(data) {
    setPre(inputPre, data.input === null || data.input === undefined ? 'none' : pretty(data.input));
    if (request?.status === 'completed') setPre(outputPre, 'output' in request ? pretty(request.output) : request.output_error ? `cannot show: ${request.output_error}` : 'none');
    else setPre(outputPre, !request ? '…' : ENDED.has(request.status) ? `none (${request.status})` : `none yet (${request.status})`);
    const paths = [...new Set([...instances.keys(), ...Object.keys(data.outputs || {})])];
    for (const path of paths) {
      let entry = outputDetails.get(path);
      if (!entry) {
        const pre = el('pre', { class: 'json' });
        const summary = el('summary', {}, el('code', {}, path));
        entry = { details: el('details', { 'data-output': path }, summary, pre), pre };
        outputDetails.set(path, entry);
        outputs.append(entry.details);
      }
      const has = data.outputs && path in data.outputs;
      setPre(entry.pre, has ? pretty(data.outputs[path]) : `no output (${instances.get(path)?.status ?? 'unknown'})`);
      entry.details.classList.toggle('no-output', !has);
    }
    if (!paths.length) outputs.replaceChildren(el('p', { class: 'muted' }, 'No vertex has run yet.'));
    else $('p.muted', outputs)?.remove();
  }

  const setPre = (pre, text) => { if (pre.textContent !== text) pre.textContent = text; };

  function renderFailures() {
    const failed = [...instances.values()].filter((v) => v.last_failure);
    failures.replaceChildren(...(failed.length ? failed.map((v) => el('div', { class: 'failure-item', 'data-failure': v.vertex, 'data-status': v.status },
      el('div', {}, el('code', {}, v.vertex), ' ', badge(v.status), el('span', { class: 'muted small' }, ` ${v.attempts} attempt${v.attempts === 1 ? '' : 's'}`)),
      el('div', { class: 'kind' }, v.last_failure.kind),
      v.last_failure.detail ? el('pre', { class: 'detail' }, v.last_failure.detail) : null)) : [el('p', { class: 'muted' }, 'No failure.')]));
  }

  // --- the timeline: one row per instance, from started to finished (or now)
  function renderGantt() {
    if (!request) return;
    const rows = [...instances.values()];
    const t0 = request.created_at_ms;
    const running = !ENDED.has(request.status);
    const ends = rows.map((r) => r.finished_at_ms || (r.started_at_ms && running ? Date.now() : r.started_at_ms || 0));
    // At least 50 ms wide: a request that took 1 ms still shows readable bars and ticks.
    const t1 = Math.max(t0 + 50, running ? Date.now() : request.finished_at_ms || 0, ...ends);
    const span = t1 - t0;
    const pct = (t) => `${(100 * (t - t0)) / span}%`;
    rows.sort((a, b) => (a.started_at_ms || Infinity) - (b.started_at_ms || Infinity));
    const shown = rows.slice(0, 300);
    const axis = el('div', { class: 'gantt-row axis', role: 'row' },
      el('div', { class: 'g-label', role: 'columnheader' }, 'vertex'),
      el('div', { class: 'g-track', role: 'columnheader' }, [0, 0.25, 0.5, 0.75, 1].map((f) => el('span', { class: 'tick', style: `left:${f * 100}%` }, `+${formatDuration(f * span)}`)),
        retryMarks.filter((m) => m >= t0).map((m) => el('span', { class: 'retry-mark', style: `left:${pct(m)}`, title: `retried at ${exact(m)}` }, 'retry'))),
      el('div', { class: 'g-meta', role: 'columnheader', title: 'attempts · worker' }, el('span', { class: 'worker' }, 'attempts · worker'), el('span', { class: 'narrow' }, '×')));
    const lines = shown.map((r) => {
      const start = r.started_at_ms;
      const end = r.finished_at_ms || (start && !VERTEX_ENDED.has(r.status) ? Date.now() : start);
      const bar = start ? el('div', {
        class: 'bar', 'data-status': r.status, style: `left:min(${pct(start)}, calc(100% - 3px));width:max(3px, ${(100 * (end - start)) / span}%)`,
        title: `${r.vertex}: ${r.status}, ${formatDuration(end - start)} from ${exact(start)}`,
      }) : el('span', { class: 'muted small not-started' }, r.status);
      return el('div', { class: 'gantt-row', role: 'row', 'data-gantt-row': r.vertex, 'data-status': r.status },
        el('div', { class: 'g-label', role: 'cell', title: r.vertex }, el('span', { class: 'dot', 'data-status': r.status }), r.vertex),
        el('div', { class: 'g-track', role: 'cell' }, bar, retryMarks.filter((m) => m >= t0).map((m) => el('span', { class: 'retry-line', style: `left:${pct(m)}` }))),
        el('div', { class: 'g-meta num', role: 'cell', title: `${r.attempts ?? 0} attempt(s)${r.worker ? ` on ${r.worker}` : ''}` },
          `×${r.attempts ?? 0}`, r.worker ? el('span', { class: 'worker' }, ` · ${r.worker}`) : null));
    });
    gantt.replaceChildren(axis, ...lines);
    if (!rows.length) gantt.append(el('p', { class: 'muted' }, 'No vertex has started yet.'));
    if (rows.length > shown.length || request.vertices_total > request.vertices.length) {
      gantt.append(el('p', { class: 'muted small' }, `Showing ${shown.length} of ${request.vertices_total ?? rows.length} vertex instances.`));
    }
  }

  // --- live events: statuses in place, the full state fetched behind
  function onEvent(type, e) {
    if (e.request_id && e.request_id !== id) return;
    if (type === 'vertex') {
      const inst = instances.get(e.vertex) || { vertex: e.vertex, attempts: 0, started_at_ms: null, finished_at_ms: null, worker: null, last_failure: null };
      inst.status = e.status;
      if (e.status === 'running') { if (!inst.started_at_ms || inst.finished_at_ms) inst.started_at_ms = e.at_ms; inst.finished_at_ms = null; }
      if (VERTEX_ENDED.has(e.status)) inst.finished_at_ms = inst.finished_at_ms || e.at_ms;
      instances.set(e.vertex, inst);
      graph.setStatuses(instances);
      renderGantt();
    } else if (type === 'request') {
      setStatus(e.status, e.at_ms);
    }
    refetch();
  }

  function startStream() {
    if (streaming || signal.aborted) return;
    streaming = true;
    follow(`${requestPath(name, id)}/events`, {
      signal, onEvent,
      reconnect: () => !request || !ENDED.has(request.status),
      onEnd: () => { streaming = false; refetch(); },
    });
  }

  applyState(await api(requestPath(name, id), { signal }));
  refetch();
  // The running bars grow; redraw the timeline each second while the request runs.
  every(1000, () => { if (request && !ENDED.has(request.status)) { renderGantt(); } }, signal);
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
  } else {
    // Plain http on another host: the old way.
    const area = el('textarea', { class: 'offscreen', readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    if (!ok) throw new Error('The browser refused to copy; select the trace id by hand.');
  }
  showBanner('Trace id copied.', 'info');
}

// ---------------------------------------------------------------------------------------

updateHeader();
render();
