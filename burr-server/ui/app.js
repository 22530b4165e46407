// The burr-rs web UI: a runs list and a run page over the /v1 API, live by Server-Sent
// Events. Plain JavaScript, no framework, no build step, nothing fetched from elsewhere.
//
// Routes (the URL's hash): `#/` (the runs list; filters as `?status=&kind=&flow=`, page
// size as `&limit=`) and
// `#/runs/<id>` (a run or application). Every element the browser tests look for has a
// `data-testid`.
'use strict';

(function () {
  // ---------------------------------------------------------------- small helpers

  const TOKEN_KEY = 'burr.token';
  const EVENT_TYPES = [
    'queued', 'claimed', 'step_finished', 'child_progress', 'attempt_failed',
    'released', 'cancel_requested', 'finished', 'change', 'message', 'announced',
  ];
  const FINISHED = new Set(['succeeded', 'failed', 'cancelled', 'completed']);
  const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'created', 'completed'];

  /** An element: `h('a', {href: '#/', class: 'x', dataset: {testid: 'y'}}, child...)`. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  /** An SVG element. */
  function s(tag, attrs, ...children) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'testid') el.setAttribute('data-testid', value);
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else if (key === 'text') el.textContent = value;
      else el.setAttribute(key, value === true ? '' : String(value));
    }
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
  }

  /** Replace `el`'s children (arrays flattened; null, undefined and false left out). */
  function fill(el, ...children) {
    el.replaceChildren();
    append(el, children);
    return el;
  }

  /**
   * `fn` (async) called `ms` after the first of a burst of calls, once for the whole burst,
   * and never twice at a time: a call during a run runs it again after. A steady stream of
   * events refreshes the page every `ms` or so (a plain debounce would wait for a pause
   * that never comes while a run works).
   */
  function coalesce(fn, ms) {
    let timer = null;
    let running = false;
    let again = false;
    const run = async () => {
      timer = null;
      running = true;
      try {
        await fn();
      } finally {
        running = false;
        if (again) {
          again = false;
          schedule();
        }
      }
    };
    const schedule = () => {
      if (running) again = true;
      else if (!timer) timer = setTimeout(run, ms);
    };
    return schedule;
  }

  const pad = (n) => String(n).padStart(2, '0');

  /** A time (µs since the epoch) as local `YYYY-MM-DD HH:MM:SS`. */
  function fmtTime(us) {
    if (us === null || us === undefined) return '—';
    const d = new Date(us / 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  /** A duration in µs, short: `340 ms`, `4.2 s`, `3m 05s`, `2h 07m`. */
  function fmtDuration(us) {
    if (us === null || us === undefined || !isFinite(us)) return '—';
    const ms = Math.max(0, us / 1000);
    if (ms < 1) return `${Math.round(Math.max(0, us))} µs`;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const sec = ms / 1000;
    if (sec < 60) return `${sec.toFixed(sec < 10 ? 2 : 1)} s`;
    const min = Math.floor(sec / 60);
    if (min < 60) return `${min}m ${pad(Math.floor(sec % 60))}s`;
    return `${Math.floor(min / 60)}h ${pad(min % 60)}m`;
  }

  const nowUs = () => Date.now() * 1000;

  /** `finished − started`, or `running for …` while it runs. */
  function durationText(started, finished) {
    if (!started) return '—';
    if (finished) return fmtDuration(finished - started);
    return `running for ${fmtDuration(nowUs() - started)}`;
  }

  function badge(status, testid) {
    return h('span', { class: `badge status-${status || 'unknown'}`, testid }, status || 'unknown');
  }

  function progressBar(progress, testid) {
    if (!progress) return h('span', { class: 'muted', testid }, '—');
    const pct = progress.total ? Math.round((100 * progress.done) / progress.total) : 0;
    return h('span', { class: 'progress', testid, title: `${progress.done} of ${progress.total} child applications finished` },
      h('span', { class: 'bar' }, h('span', { class: 'fill', style: `width:${pct}%` })),
      h('span', { class: 'count' }, `${progress.done}/${progress.total}`));
  }

  const runHref = (id) => `#/runs/${encodeURIComponent(id)}`;
  const runPath = (id) => `/v1/runs/${encodeURIComponent(id)}`;

  /** JSON as indented text. */
  const pretty = (value) => JSON.stringify(value, null, 2);

  // ---------------------------------------------------------------- messages

  const messages = document.querySelector('[data-testid="messages"]');

  /** Show a problem (RFC 9457) or an error in the message area. */
  function showProblem(error, context) {
    const p = error && error.problem;
    const text = p
      ? `${p.status} ${p.title}: ${p.detail}${p.field ? ` (field: ${p.field})` : ''}`
      : String((error && error.message) || error);
    const item = h('div', { class: 'message error', testid: 'message', role: 'alert' },
      h('span', { testid: 'message-text' }, context ? `${context}: ${text}` : text),
      h('button', { type: 'button', class: 'link', title: 'Dismiss', onclick: () => item.remove() }, '×'));
    messages.append(item);
    while (messages.children.length > 4) messages.firstChild.remove();
  }

  function showInfo(text) {
    const item = h('div', { class: 'message info', testid: 'message' },
      h('span', { testid: 'message-text' }, text),
      h('button', { type: 'button', class: 'link', title: 'Dismiss', onclick: () => item.remove() }, '×'));
    messages.append(item);
    setTimeout(() => item.remove(), 6000);
  }

  function clearMessages() {
    messages.replaceChildren();
  }

  // ---------------------------------------------------------------- API and tokens

  class ApiError extends Error {
    constructor(status, problem) {
      super(problem && problem.detail ? problem.detail : `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  const token = () => localStorage.getItem(TOKEN_KEY) || '';

  /** Fetch `path` of the API as JSON; a problem becomes an `ApiError`; a 401 asks for a token. */
  async function api(path, options = {}) {
    const headers = { Accept: 'application/json' };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method: options.method || 'GET',
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
      });
    } catch (e) {
      throw new ApiError(0, { status: 0, title: 'Network error', detail: `the server cannot be reached (${e.message})` });
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const problem = body && body.detail ? body : { status: response.status, title: response.statusText, detail: text || `HTTP ${response.status}` };
      const error = new ApiError(response.status, problem);
      if (response.status === 401) askForToken();
      throw error;
    }
    return body;
  }

  /** An EventSource on `path`, with the token as `access_token` (it cannot send headers). */
  function events(path, onEvent) {
    const url = token() ? `${path}${path.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token())}` : path;
    const source = new EventSource(url);
    const live = document.querySelector('[data-testid="live"]');
    source.onopen = () => {
      live.textContent = 'live';
      live.classList.add('on');
    };
    source.onerror = () => {
      live.textContent = source.readyState === EventSource.CLOSED ? 'offline' : 'reconnecting…';
      live.classList.remove('on');
    };
    for (const type of EVENT_TYPES) source.addEventListener(type, onEvent);
    return {
      close() {
        source.close();
        live.textContent = 'offline';
        live.classList.remove('on');
      },
    };
  }

  let tokenAsked = false;

  /** Replace the page with a form asking for a token. */
  function askForToken() {
    if (tokenAsked) return;
    tokenAsked = true;
    stopView();
    const input = h('input', { type: 'password', name: 'token', testid: 'token-input', autocomplete: 'off', placeholder: 'token', required: true });
    const form = h('form', {
      class: 'card token-form', testid: 'token-form',
      onsubmit: (e) => {
        e.preventDefault();
        localStorage.setItem(TOKEN_KEY, input.value.trim());
        tokenAsked = false;
        clearMessages();
        route();
      },
    },
    h('h2', {}, 'A token is needed'),
    h('p', {}, token()
      ? 'The token kept in this browser was refused. Enter another one (read-only or admin).'
      : 'This server asks for a token. Enter a read-only or admin token; it is kept in this browser.'),
    h('div', { class: 'row' }, input, h('button', { type: 'submit', testid: 'token-submit' }, 'Use token')));
    fill(app, form);
    updateTokenButton();
    input.focus();
  }

  const forget = document.querySelector('[data-testid="forget-token"]');
  function updateTokenButton() {
    forget.hidden = !token();
  }
  forget.addEventListener('click', () => {
    localStorage.removeItem(TOKEN_KEY);
    updateTokenButton();
    route();
  });

  // ---------------------------------------------------------------- routing

  const app = document.getElementById('app');
  let view = null; // { stop() }

  function stopView() {
    if (view) view.stop();
    view = null;
  }

  function route() {
    stopView();
    tokenAsked = false;
    updateTokenButton();
    const hash = location.hash.replace(/^#/, '') || '/';
    const [path, query] = hash.split('?');
    const params = new URLSearchParams(query || '');
    const run = path.match(/^\/runs\/(.+)$/);
    if (run) view = runPage(decodeURIComponent(run[1]));
    else view = runsList(params);
  }

  window.addEventListener('hashchange', () => {
    clearMessages();
    route();
  });

  // ---------------------------------------------------------------- the runs list

  function runsList(params) {
    const filters = {
      status: params.get('status') || '',
      kind: params.get('kind') || '',
      flow: params.get('flow') || '',
      limit: params.get('limit') || '',
    };
    // The cursors of the pages before this one (for "previous"), and this page's.
    const cursors = [];
    let cursor = null;
    let stopped = false;

    const statusSelect = h('select', { name: 'status', testid: 'filter-status' },
      h('option', { value: '' }, 'any status'),
      STATUSES.map((st) => h('option', { value: st, selected: st === filters.status }, st)));
    const kindInput = h('input', { name: 'kind', testid: 'filter-kind', placeholder: 'kind', value: filters.kind, list: 'kinds' });
    const kindList = h('datalist', { id: 'kinds' });
    const flowInput = h('input', { name: 'flow', testid: 'filter-flow', placeholder: 'flow', value: filters.flow });
    const applyFilters = (e) => {
      if (e) e.preventDefault();
      const q = new URLSearchParams();
      if (statusSelect.value) q.set('status', statusSelect.value);
      if (kindInput.value.trim()) q.set('kind', kindInput.value.trim());
      if (flowInput.value.trim()) q.set('flow', flowInput.value.trim());
      if (filters.limit) q.set('limit', filters.limit);
      const qs = q.toString();
      location.hash = qs ? `#/?${qs}` : '#/';
    };
    statusSelect.addEventListener('change', applyFilters);
    const filterForm = h('form', { class: 'filters', testid: 'filters', onsubmit: applyFilters },
      h('label', {}, 'Status ', statusSelect),
      h('label', {}, 'Kind ', kindInput, kindList),
      h('label', {}, 'Flow ', flowInput),
      h('button', { type: 'submit', testid: 'filter-apply' }, 'Filter'),
      (filters.status || filters.kind || filters.flow) && h('a', { href: '#/', testid: 'filter-clear' }, 'clear'));

    const tbody = h('tbody', { testid: 'runs-body' });
    const table = h('table', { class: 'runs', testid: 'runs-table' },
      h('thead', {}, h('tr', {},
        ['id', 'source', 'kind', 'status', 'priority', 'progress', 'created', 'duration'].map((c) => h('th', {}, c)))),
      tbody);
    const prev = h('button', { type: 'button', testid: 'prev-page', disabled: true }, '← previous');
    const next = h('button', { type: 'button', testid: 'next-page', disabled: true }, 'next page →');
    const pageInfo = h('span', { class: 'muted', testid: 'page-info' });
    const updated = h('span', { class: 'muted small', testid: 'list-updated' });
    fill(app,
      h('section', { class: 'card' },
        h('div', { class: 'title-row' }, h('h1', {}, 'Runs'), updated),
        filterForm,
        h('div', { class: 'table-wrap' }, table),
        h('div', { class: 'pager' }, prev, pageInfo, next)));

    let nextCursor = null;
    next.addEventListener('click', () => {
      if (!nextCursor) return;
      cursors.push(cursor);
      cursor = nextCursor;
      load();
    });
    prev.addEventListener('click', () => {
      if (!cursors.length) return;
      cursor = cursors.pop();
      load();
    });

    let rows = [];
    async function load() {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
      if (cursor) q.set('cursor', cursor);
      let page;
      try {
        page = await api(`/v1/runs?${q}`);
      } catch (e) {
        if (!stopped && e.status !== 401) showProblem(e, 'Cannot list runs');
        return;
      }
      if (stopped) return;
      rows = page.runs;
      nextCursor = page.next_cursor;
      next.disabled = !nextCursor;
      prev.disabled = !cursors.length;
      pageInfo.textContent = `page ${cursors.length + 1}`;
      updated.textContent = `updated ${fmtTime(nowUs())}`;
      render();
    }

    function render() {
      if (!rows.length) {
        fill(tbody, h('tr', {}, h('td', { colspan: 8, class: 'empty', testid: 'runs-empty' }, 'No runs or applications match.')));
        return;
      }
      fill(tbody, ...rows.map((r) => h('tr', { testid: 'run-row', 'data-id': r.id, 'data-status': r.status },
        h('td', { class: 'id' }, h('a', { href: runHref(r.id), testid: 'run-link', title: r.id }, r.id)),
        h('td', {}, h('span', { class: `source source-${r.source}` }, r.source)),
        h('td', { testid: 'run-kind' }, r.kind || '—'),
        h('td', {}, badge(r.status, 'run-status')),
        h('td', { class: 'num' }, r.priority === null || r.priority === undefined ? '—' : r.priority),
        h('td', {}, progressBar(r.progress, 'run-progress')),
        h('td', { class: 'time' }, fmtTime(r.created_at_us)),
        h('td', { class: 'duration', testid: 'run-duration' }, rowDuration(r)))));
    }

    function rowDuration(r) {
      if (r.source === 'run') return durationText(r.started_at_us, r.finished_at_us);
      return durationText(r.created_at_us, FINISHED.has(r.status) ? r.updated_at_us : null);
    }

    // "running for" ticks without refetching.
    const ticker = setInterval(() => {
      for (const tr of tbody.querySelectorAll('tr[data-id]')) {
        const r = rows.find((x) => x.id === tr.dataset.id);
        if (r && !FINISHED.has(r.status)) tr.querySelector('[data-testid="run-duration"]').textContent = rowDuration(r);
      }
    }, 1000);

    api('/v1/kinds').then((kinds) => {
      fill(kindList, ...(kinds || []).map((k) => h('option', { value: k.name })));
    }).catch(() => {});

    const refetch = coalesce(load, 200);
    const stream = events('/v1/events', refetch);
    load();
    return {
      stop() {
        stopped = true;
        clearInterval(ticker);
        stream.close();
      },
    };
  }

  // ---------------------------------------------------------------- the run page

  function runPage(id) {
    let stopped = false;
    let data = { run: null, app: null, steps: [], children: null, graph: null };
    let selected = null; // the selected step's sequence id (null: follow the latest)
    let selectedAttempt = null;
    const collapsed = new Set();

    const header = h('section', { class: 'card run-header', testid: 'run-header' }, 'Loading…');
    const timeline = h('div', { class: 'timeline', testid: 'timeline' });
    const stepDetail = h('div', { class: 'step-detail', testid: 'step-detail' });
    const tree = h('div', { class: 'tree', testid: 'child-tree' });
    const stateBox = h('div', { class: 'state', testid: 'state' });
    const diffBox = h('div', { class: 'diff', testid: 'diff' });
    const graphBox = h('div', { class: 'graph', testid: 'graph' });
    // Results the run's actions announced as soon as they were stored (`announced`).
    const announced = h('ul', { class: 'announced', testid: 'announced' });
    const announcedCard = h('section', { class: 'card wide', hidden: true },
      h('h2', {}, 'Announced'), announced);
    const stateTitle = h('h2', { testid: 'state-title' }, 'State');
    const followBtn = h('button', {
      type: 'button', class: 'link', testid: 'follow-latest', hidden: true,
      onclick: () => {
        selected = null;
        selectedAttempt = null;
        renderTimeline();
        loadState();
      },
    }, 'follow the latest step');
    const cancelBtn = h('button', { type: 'button', class: 'danger', testid: 'cancel-button', disabled: true, onclick: cancel }, 'Cancel');
    const rerunBtn = h('button', { type: 'button', testid: 'rerun-button', disabled: true, onclick: rerun }, 'Rerun from this step');

    fill(app,
      h('div', { class: 'crumbs' }, h('a', { href: '#/', testid: 'back-to-runs' }, '← Runs')),
      header,
      h('div', { class: 'grid' },
        h('section', { class: 'card wide' }, h('div', { class: 'title-row' }, h('h2', {}, 'Steps'), h('span', { class: 'muted small' }, 'click a step to see its state ', followBtn)), timeline, stepDetail),
        h('section', { class: 'card' }, h('h2', {}, 'Graph'), graphBox),
        h('section', { class: 'card' }, h('h2', {}, 'Child applications'), tree),
        announcedCard,
        h('section', { class: 'card wide' },
          h('div', { class: 'title-row' }, stateTitle, h('span', { class: 'actions' }, rerunBtn)),
          h('div', { class: 'state-grid' },
            h('div', {}, h('h3', {}, 'Diff to the previous step'), diffBox),
            h('div', {}, h('h3', {}, 'Whole state'), stateBox)))));

    async function load() {
      const results = await Promise.allSettled([
        api(runPath(id)),
        api(`${runPath(id)}/steps`),
        api(`${runPath(id)}/children`),
        api(`${runPath(id)}/graph`),
      ]);
      if (stopped) return;
      const [run, steps, children, graph] = results;
      if (run.status === 'rejected') {
        if (run.reason.status !== 401) {
          fill(header, h('p', { class: 'muted' }, `No run ${id}.`));
          showProblem(run.reason, `Cannot show ${id}`);
        }
        return;
      }
      data.run = run.value.run;
      data.app = run.value.app;
      data.steps = steps.status === 'fulfilled' ? steps.value : [];
      data.stepsProblem = steps.status === 'rejected' ? steps.reason : null;
      data.children = children.status === 'fulfilled' ? children.value : null;
      data.graph = graph.status === 'fulfilled' ? graph.value : null;
      data.graphProblem = graph.status === 'rejected' ? graph.reason : null;
      renderHeader();
      renderTimeline();
      renderTree();
      renderGraph();
      loadState();
    }

    /** A run of the queue whose application has not started. */
    function notStarted() {
      return Boolean(data.run && !data.app);
    }

    function status() {
      if (data.run) return data.run.status;
      return data.app ? data.app.status : 'unknown';
    }

    function renderHeader() {
      const r = data.run;
      const a = data.app;
      const fields = [];
      const field = (label, value, testid) => fields.push(h('div', { class: 'field' }, h('span', { class: 'label' }, label), h('span', { class: 'value', testid }, value)));
      field('status', badge(status(), 'run-status'));
      if (r) {
        field('kind', `${r.kind} v${r.kind_version}`, 'run-kind');
        field('priority', r.priority, 'run-priority');
        field('attempt', `${r.attempt} of ${r.max_attempts}`, 'run-attempt');
        field('flow', r.flow, 'run-flow');
        field('queue', r.queue);
        field('submitted', fmtTime(r.submitted_at_us));
        if (r.status === 'queued' && r.not_before_us > nowUs()) field('not before', fmtTime(r.not_before_us), 'run-not-before');
        field('started', fmtTime(r.started_at_us));
        field('finished', fmtTime(r.finished_at_us));
        field('duration', durationText(r.started_at_us, r.finished_at_us), 'run-duration');
        if (r.cancel_requested && !FINISHED.has(r.status)) field('cancel', 'requested', 'cancel-requested');
        if (r.fork) field('rerun of', h('a', { href: runHref(r.fork.run_id) }, `${r.fork.run_id} from step ${r.fork.sequence_id}`), 'run-fork');
      } else {
        field('source', 'application (not a run of the queue)');
      }
      if (a) {
        field('steps', a.steps, 'app-steps');
        if (!r) {
          field('created', fmtTime(a.created_at_us));
          field('updated', fmtTime(a.updated_at_us));
        }
        if (a.partition_key) field('partition key', a.partition_key);
        if (a.spawning_parent) field('spawned by', pointerLink(a.spawning_parent), 'spawning-parent');
        if (a.fork_parent) field('forked from', pointerLink(a.fork_parent));
      }
      const error = r && r.error;
      const running = r && !FINISHED.has(r.status);
      cancelBtn.disabled = !running || r.cancel_requested;
      cancelBtn.title = r ? '' : 'only runs of the queue can be cancelled';
      fill(header,
        h('div', { class: 'title-row' },
          h('h1', { class: 'run-id', testid: 'run-id', title: id }, id),
          h('span', { class: 'actions' }, cancelBtn)),
        h('div', { class: 'fields' }, fields),
        error && error.length ? h('div', { class: 'error-chain', testid: 'run-error' },
          h('strong', {}, 'Error'),
          h('ol', {}, error.map((e) => h('li', {}, e)))) : null,
        r ? h('div', { class: 'result' },
          h('details', { testid: 'run-inputs' }, h('summary', {}, 'Inputs'), h('pre', {}, pretty(r.inputs))),
          r.result ? h('details', {}, h('summary', {}, 'Result'), h('pre', {}, pretty(r.result))) : null) : null);
    }

    /** `app@seq` as a link to the app. */
    function pointerLink(pointer) {
      const at = pointer.lastIndexOf('@');
      const app = at > 0 ? pointer.slice(0, at) : pointer;
      return h('a', { href: runHref(app) }, pointer);
    }

    // ------------------------------------------------ the step timeline

    function renderTimeline() {
      const steps = data.steps;
      if (!steps.length) {
        fill(timeline, h('p', { class: 'muted', testid: 'no-steps' }, notStarted()
          ? 'Not started yet: no steps.'
          : data.stepsProblem && data.stepsProblem.problem ? data.stepsProblem.problem.detail : 'No steps yet.'));
        stepDetail.replaceChildren();
        return;
      }
      const timed = steps.filter((st) => st.started_at_us);
      const t0 = timed.length ? Math.min(...timed.map((st) => st.started_at_us)) : 0;
      const end = (st) => st.ended_at_us || (st.status === 'running' ? nowUs() : st.started_at_us);
      const t1 = timed.length ? Math.max(...timed.map(end)) : 0;
      const span = Math.max(t1 - t0, 1);
      const attempts = new Map();
      const last = new Map();
      for (const st of steps) {
        attempts.set(st.sequence_id, (attempts.get(st.sequence_id) || 0) + 1);
        last.set(st.sequence_id, st);
      }
      const seq = currentSeq();
      const rows = steps.map((st) => {
        let bar;
        if (st.started_at_us) {
          const left = (100 * (st.started_at_us - t0)) / span;
          const width = Math.max((100 * (end(st) - st.started_at_us)) / span, 0.4);
          bar = h('div', {
            class: `tl-bar status-${st.status}`, testid: 'step-bar',
            style: `left:${left.toFixed(3)}%;width:${Math.min(width, 100 - left).toFixed(3)}%`,
          });
        } else {
          bar = h('div', { class: 'tl-untimed', title: 'no times recorded (checkpoint only)' });
        }
        const isSelected = st.sequence_id === seq && (selectedAttempt === null ? last.get(seq) === st : st.attempt === selectedAttempt);
        const tip = [`step ${st.sequence_id} · ${st.action}`, `attempt ${st.attempt}`, st.status,
          st.duration_us !== null && st.duration_us !== undefined ? fmtDuration(st.duration_us) : null,
          ...(st.error || [])].filter(Boolean).join('\n');
        return h('div', {
          class: `tl-row${isSelected ? ' selected' : ''}${st.status === 'failed' ? ' failed' : ''}`,
          testid: 'step-row', 'data-seq': st.sequence_id, 'data-action': st.action, 'data-attempt': st.attempt, 'data-status': st.status,
          title: tip, tabindex: 0,
          onclick: () => selectStep(st),
          onkeydown: (e) => { if (e.key === 'Enter') selectStep(st); },
        },
        h('div', { class: 'tl-label' },
          h('span', { class: 'seq' }, st.sequence_id),
          h('span', { class: 'action' }, st.action),
          attempts.get(st.sequence_id) > 1 || st.attempt > 1 ? h('span', { class: 'attempt', testid: 'step-attempt' }, `attempt ${st.attempt}`) : null),
        h('div', { class: 'tl-track' }, bar),
        h('div', { class: 'tl-dur' }, st.status === 'running' ? 'running' : fmtDuration(st.duration_us)));
      });
      fill(timeline,
        h('div', { class: 'tl-row tl-axis' }, h('div', { class: 'tl-label muted' }, 'step'),
          h('div', { class: 'tl-track' }, h('span', { class: 'tl-tick start' }, timed.length ? fmtTime(t0) : ''), h('span', { class: 'tl-tick end' }, timed.length ? `+${fmtDuration(t1 - t0)}` : '')),
          h('div', { class: 'tl-dur muted' }, 'took')),
        rows);
      renderStepDetail();
    }

    /** The sequence id whose state is shown: the selected one, else the latest. */
    function currentSeq() {
      if (selected !== null) return selected;
      const seqs = data.steps.map((st) => st.sequence_id);
      return seqs.length ? Math.max(...seqs) : null;
    }

    function selectStep(st) {
      selected = st.sequence_id;
      selectedAttempt = st.attempt;
      renderTimeline();
      loadState();
    }

    function renderStepDetail() {
      followBtn.hidden = selected === null;
      const seq = currentSeq();
      const candidates = data.steps.filter((st) => st.sequence_id === seq);
      const st = candidates.find((x) => x.attempt === selectedAttempt) || candidates[candidates.length - 1];
      if (!st) {
        stepDetail.replaceChildren();
        return;
      }
      fill(stepDetail,
        h('div', { class: 'step-head' },
          h('strong', {}, `Step ${st.sequence_id} · ${st.action}`), ' ',
          badge(st.status), ' ', h('span', { class: 'muted' }, `attempt ${st.attempt} · started ${fmtTime(st.started_at_us)} · took ${fmtDuration(st.duration_us)}`)),
        st.error && st.error.length ? h('div', { class: 'error-chain', testid: 'step-error' }, h('ol', {}, st.error.map((e) => h('li', {}, e)))) : null,
        st.inputs && Object.keys(st.inputs).length ? h('details', {}, h('summary', {}, 'Inputs'), h('pre', {}, pretty(st.inputs))) : null,
        st.result ? h('details', {}, h('summary', {}, 'Result'), h('pre', {}, pretty(st.result))) : null);
    }

    // ------------------------------------------------ state and diff

    let stateRequest = 0;
    async function loadState() {
      const seq = currentSeq();
      const mine = ++stateRequest;
      rerunBtn.disabled = seq === null || !data.run;
      rerunBtn.textContent = seq === null ? 'Rerun from this step' : `Rerun from step ${seq}`;
      rerunBtn.title = data.run ? 'start a new run from the state after this step' : 'only runs of the queue can be rerun';
      if (seq === null) {
        stateTitle.textContent = 'State';
        fill(stateBox, h('p', { class: 'muted' }, 'No state yet.'));
        diffBox.replaceChildren();
        return;
      }
      const [state, diff] = await Promise.allSettled([
        api(`${runPath(id)}/state?sequence_id=${seq}`),
        api(`${runPath(id)}/diff?to=${seq}`),
      ]);
      if (stopped || mine !== stateRequest) return;
      const st = data.steps.filter((x) => x.sequence_id === seq).pop();
      const note = st && st.status === 'running' ? ', still running: its writes are not saved yet' : '';
      stateTitle.textContent = `State after step ${seq}${st ? ` (${st.action}${note})` : ''}`;
      stateTitle.dataset.seq = seq;
      const d = diff.status === 'fulfilled' ? diff.value : null;
      if (state.status === 'fulfilled') {
        fill(stateBox, stateTable(state.value.state, d));
      } else {
        fill(stateBox, h('p', { class: 'muted', testid: 'state-problem' }, state.reason.problem ? state.reason.problem.detail : String(state.reason)));
      }
      if (d) fill(diffBox, diffView(d));
      else fill(diffBox, h('p', { class: 'muted' }, diff.reason.problem ? diff.reason.problem.detail : String(diff.reason)));
    }

    function stateTable(state, diff) {
      const keys = Object.keys(state).sort();
      const removed = diff ? Object.keys(diff.removed) : [];
      if (!keys.length && !removed.length) return h('p', { class: 'muted' }, 'The state is empty.');
      const cls = (k) => (diff && k in diff.added ? 'added' : diff && k in diff.changed ? 'changed' : '');
      return h('table', { class: 'kv', testid: 'state-table' },
        h('tbody', {},
          keys.map((k) => h('tr', { class: cls(k), testid: 'state-row', 'data-key': k },
            h('th', {}, k), h('td', {}, valueView(state[k])))),
          removed.map((k) => h('tr', { class: 'removed', testid: 'state-row', 'data-key': k },
            h('th', {}, k), h('td', {}, h('span', { class: 'muted' }, '(removed by this step)'))))));
    }

    function valueView(value) {
      const text = pretty(value);
      if (text.length > 400 || text.includes('\n')) {
        return h('details', { class: 'value-details' }, h('summary', {}, summarize(value)), h('pre', {}, text));
      }
      return h('code', {}, text);
    }

    function summarize(value) {
      if (Array.isArray(value)) return `array of ${value.length}`;
      if (value && typeof value === 'object') return `object with ${Object.keys(value).length} keys`;
      const t = JSON.stringify(value);
      return t.length > 60 ? `${t.slice(0, 57)}…` : t;
    }

    function diffView(d) {
      const items = [];
      for (const [k, v] of Object.entries(d.added)) {
        items.push(h('li', { class: 'added', testid: 'diff-added', 'data-key': k }, h('span', { class: 'sign' }, '+'), h('strong', {}, k), ' ', h('code', {}, short(v))));
      }
      for (const [k, v] of Object.entries(d.removed)) {
        items.push(h('li', { class: 'removed', testid: 'diff-removed', 'data-key': k }, h('span', { class: 'sign' }, '−'), h('strong', {}, k), ' ', h('code', {}, short(v))));
      }
      for (const [k, c] of Object.entries(d.changed)) {
        items.push(h('li', { class: 'changed', testid: 'diff-changed', 'data-key': k }, h('span', { class: 'sign' }, '~'), h('strong', {}, k), ' ',
          h('code', { class: 'from' }, short(c.from)), ' → ', h('code', { class: 'to' }, short(c.to))));
      }
      const from = d.from === null || d.from === undefined ? 'the empty state' : `step ${d.from}`;
      return h('div', {},
        h('p', { class: 'muted small' }, `from ${from} to step ${d.to}`),
        items.length ? h('ul', { class: 'diff-list' }, items) : h('p', { class: 'muted', testid: 'diff-empty' }, 'Nothing changed.'));
    }

    function short(value) {
      const t = JSON.stringify(value);
      return t && t.length > 120 ? `${t.slice(0, 117)}…` : t;
    }

    // ------------------------------------------------ the child tree

    const MAX_SHOWN = 200;

    function renderTree() {
      const root = data.children;
      if (!root || !root.children.length) {
        fill(tree, h('p', { class: 'muted', testid: 'no-children' }, 'No child applications.'));
        return;
      }
      const details = h('details', { class: 'tree-root', open: !collapsed.has(root.app_id) },
        h('summary', { testid: 'tree-root-progress' },
          `${root.children.length} child application${root.children.length === 1 ? '' : 's'} `,
          progressBar(root.progress, 'tree-progress')),
        h('ul', {}, childItems(root)));
      details.addEventListener('toggle', () => {
        if (details.open) collapsed.delete(root.app_id);
        else collapsed.add(root.app_id);
      });
      fill(tree, details);
    }

    function childItems(parent) {
      const shown = parent.children.slice(0, MAX_SHOWN);
      const items = shown.map((child) => {
        const name = child.app_id.startsWith(`${parent.app_id}/`) ? child.app_id.slice(parent.app_id.length + 1) : child.app_id;
        const line = h('span', { class: 'node' },
          h('a', { href: runHref(child.app_id), title: child.app_id, testid: 'child-link' }, name), ' ',
          badge(child.status, 'child-status'), ' ',
          h('span', { class: 'muted small' }, `${child.steps} step${child.steps === 1 ? '' : 's'}`),
          child.progress.total ? progressBar(child.progress, 'child-progress') : null);
        if (!child.children.length) return h('li', { testid: 'child-node', 'data-id': child.app_id }, line);
        const details = h('details', { open: !collapsed.has(child.app_id) }, h('summary', {}, line), h('ul', {}, childItems(child)));
        details.addEventListener('toggle', () => {
          if (details.open) collapsed.delete(child.app_id);
          else collapsed.add(child.app_id);
        });
        return h('li', { testid: 'child-node', 'data-id': child.app_id }, details);
      });
      if (parent.children.length > MAX_SHOWN) {
        items.push(h('li', { class: 'muted' }, `… and ${parent.children.length - MAX_SHOWN} more`));
      }
      return items;
    }

    // ------------------------------------------------ the graph

    function renderGraph() {
      const g = data.graph;
      if (!g) {
        const p = data.graphProblem && data.graphProblem.problem;
        fill(graphBox, h('p', { class: 'muted', testid: 'no-graph' }, notStarted()
          ? 'The graph is recorded when the run starts.'
          : p ? p.detail : 'No graph recorded.'));
        return;
      }
      fill(graphBox, drawGraph(g));
    }

    // ------------------------------------------------ acting

    async function cancel() {
      cancelBtn.disabled = true;
      try {
        const run = await api(`${runPath(id)}/cancel`, { method: 'POST' });
        showInfo(run.status === 'cancelled' ? `Run ${id} cancelled.` : `Cancel of ${id} requested: its worker stops it.`);
      } catch (e) {
        if (e.status !== 401) showProblem(e, 'Cannot cancel');
      }
      refetch();
    }

    async function rerun() {
      const seq = currentSeq();
      if (seq === null) return;
      rerunBtn.disabled = true;
      try {
        const run = await api(`${runPath(id)}/rerun`, { method: 'POST', body: { sequence_id: seq } });
        showInfo(`Rerun of ${id} from step ${seq}: ${run.id}`);
        location.hash = runHref(run.id);
      } catch (e) {
        if (e.status !== 401) showProblem(e, 'Cannot rerun');
        rerunBtn.disabled = false;
      }
    }

    const refetch = coalesce(load, 200);
    const stream = events(`${runPath(id)}/events`, (e) => {
      if (e.type === 'announced') {
        try {
          const a = JSON.parse(e.data);
          announcedCard.hidden = false;
          announced.append(h('li', {},
            h('a', { href: runHref(a.app_id) }, a.name), ' ',
            h('code', {}, JSON.stringify(a.data))));
        } catch (_) { /* not JSON: nothing to show */ }
      }
      refetch(e);
    });
    const ticker = setInterval(() => {
      const r = data.run;
      if (r && !FINISHED.has(r.status)) {
        const el = header.querySelector('[data-testid="run-duration"]');
        if (el) el.textContent = durationText(r.started_at_us, r.finished_at_us);
      }
    }, 1000);
    load();
    return {
      stop() {
        stopped = true;
        clearInterval(ticker);
        stream.close();
      },
    };
  }

  // ---------------------------------------------------------------- graph drawing

  /**
   * The graph as SVG: actions in layers (by shortest distance from the entrypoint), top
   * to bottom; transitions as arrows labelled with their conditions; transitions to the
   * same or an earlier layer routed around the right side; the current action highlighted.
   */
  function drawGraph(g) {
    const names = g.actions.map((a) => a.name);
    for (const t of g.transitions) {
      if (!names.includes(t.from)) names.push(t.from);
      if (!names.includes(t.to)) names.push(t.to);
    }
    if (!names.length) return h('p', { class: 'muted' }, 'The graph has no actions.');
    const out = new Map(names.map((n) => [n, []]));
    for (const t of g.transitions) out.get(t.from).push(t.to);

    // Layers: BFS from the entrypoint; what it does not reach, after.
    const layer = new Map();
    const start = g.entrypoint && names.includes(g.entrypoint) ? g.entrypoint : names[0];
    const bfs = (from, base) => {
      const queue = [from];
      layer.set(from, base);
      while (queue.length) {
        const n = queue.shift();
        for (const m of out.get(n)) {
          if (!layer.has(m)) {
            layer.set(m, layer.get(n) + 1);
            queue.push(m);
          }
        }
      }
    };
    bfs(start, 0);
    for (const n of names) {
      if (!layer.has(n)) bfs(n, Math.max(...layer.values()) + 1);
    }
    const layers = [];
    for (const n of names) {
      const l = layer.get(n);
      (layers[l] = layers[l] || []).push(n);
    }
    // One barycenter pass: order each layer by where its predecessors sit.
    const pos = new Map();
    layers.forEach((ns) => ns.forEach((n, i) => pos.set(n, i)));
    for (let l = 1; l < layers.length; l++) {
      const bary = (n) => {
        const preds = g.transitions.filter((t) => t.to === n && layer.get(t.from) < l).map((t) => pos.get(t.from));
        return preds.length ? preds.reduce((a, b) => a + b, 0) / preds.length : pos.get(n);
      };
      layers[l] = (layers[l] || []).map((n) => [n, bary(n)]).sort((a, b) => a[1] - b[1]).map((x) => x[0]);
      layers[l].forEach((n, i) => pos.set(n, i));
    }

    // Sizes and places.
    const CHAR = 7.4;
    const NODE_H = 34;
    const GAP_X = 36;
    const GAP_Y = 64;
    const MARGIN = 16;
    const width = (n) => Math.max(84, n.length * CHAR + 28);
    const layerWidth = (ns) => ns.reduce((a, n) => a + width(n), 0) + GAP_X * (ns.length - 1);
    const inner = Math.max(...layers.filter(Boolean).map(layerWidth));
    const box = new Map();
    layers.forEach((ns, l) => {
      if (!ns) return;
      let x = MARGIN + (inner - layerWidth(ns)) / 2;
      const y = MARGIN + l * (NODE_H + GAP_Y);
      for (const n of ns) {
        box.set(n, { x, y, w: width(n), h: NODE_H, cx: x + width(n) / 2, cy: y + NODE_H / 2 });
        x += width(n) + GAP_X;
      }
    });

    // Transitions between the same two actions share one arrow.
    const edges = new Map();
    for (const t of g.transitions) {
      const key = `${t.from}\u0000${t.to}`;
      if (!edges.has(key)) edges.set(key, { from: t.from, to: t.to, conditions: [] });
      edges.get(key).conditions.push(t.condition);
    }

    const paths = [];
    const labels = [];
    let right = MARGIN + inner;
    let around = 0;
    const label = (x, y, text, anchor) => {
      const shown = text.length > 38 ? `${text.slice(0, 36)}…` : text;
      const w = shown.length * 6.4 + 8;
      const left = anchor === 'start' ? x : anchor === 'end' ? x - w : x - w / 2;
      right = Math.max(right, left + w);
      labels.push(s('g', { class: `edge-label${text === 'default' ? ' default' : ''}` },
        s('title', {}, text),
        s('rect', { x: left, y: y - 9, width: w, height: 16, rx: 3 }),
        s('text', { x: left + w / 2, y: y + 3, 'text-anchor': 'middle' }, shown)));
    };
    for (const e of edges.values()) {
      const a = box.get(e.from);
      const b = box.get(e.to);
      const text = e.conditions.join(' | ');
      const testid = `graph-edge-${e.from}-${e.to}`;
      if (e.from === e.to) {
        const x = a.x + a.w;
        const d = `M ${x} ${a.cy - 8} C ${x + 44} ${a.cy - 30}, ${x + 44} ${a.cy + 30}, ${x + 2} ${a.cy + 8}`;
        paths.push(s('path', { d, class: 'edge', 'marker-end': 'url(#arrow)', testid }));
        label(x + 40, a.cy, text, 'start');
        right = Math.max(right, x + 50);
      } else if (layer.get(e.to) > layer.get(e.from)) {
        const sx = a.cx;
        const sy = a.y + a.h;
        const tx = b.cx;
        const ty = b.y - 2;
        const dy = (ty - sy) / 2;
        const d = `M ${sx} ${sy} C ${sx} ${sy + dy}, ${tx} ${ty - dy}, ${tx} ${ty}`;
        paths.push(s('path', { d, class: 'edge', 'marker-end': 'url(#arrow)', testid }));
        label((sx + tx) / 2, (sy + ty) / 2, text, 'middle');
      } else {
        around += 1;
        const xo = MARGIN + inner + 24 + around * 18;
        const sx = a.x + a.w;
        const tx = b.x + b.w + 2;
        const d = `M ${sx} ${a.cy} C ${xo} ${a.cy}, ${xo} ${b.cy}, ${tx} ${b.cy}`;
        paths.push(s('path', { d, class: 'edge back', 'marker-end': 'url(#arrow)', testid }));
        label(xo - 6, (a.cy + b.cy) / 2, text, 'start');
        right = Math.max(right, xo + 10);
      }
    }

    const nodes = names.map((n) => {
      const b = box.get(n);
      const current = g.current === n;
      const cls = ['node', current ? 'current' : '', current && g.running ? 'running' : '', n === start ? 'entry' : ''].filter(Boolean).join(' ');
      const action = g.actions.find((x) => x.name === n);
      const tip = action ? [n, action.reads.length ? `reads: ${action.reads.join(', ')}` : '', action.writes.length ? `writes: ${action.writes.join(', ')}` : '',
        action.inputs.length ? `inputs: ${action.inputs.join(', ')}` : ''].filter(Boolean).join('\n') : n;
      return s('g', { class: cls, testid: `graph-node-${n}`, 'data-current': current ? 'true' : 'false' },
        s('title', {}, tip),
        s('rect', { x: b.x, y: b.y, width: b.w, height: b.h, rx: 8 }),
        s('text', { x: b.cx, y: b.cy + 4.5, 'text-anchor': 'middle' }, n));
    });
    const W = Math.ceil(right + MARGIN);
    const H = MARGIN * 2 + layers.length * NODE_H + (layers.length - 1) * GAP_Y;
    return s('svg', { class: 'graph-svg', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'the application graph', testid: 'graph-svg' },
      s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }))),
      paths, labels, nodes);
  }

  // ---------------------------------------------------------------- start

  route();
})();
