/**
 * What the renderer's main thread did, from the Chrome DevTools Protocol (for bench/dashboard-browser.mjs).
 *
 * - `metricsDelta`: Performance.getMetrics before and after a phase: seconds of script, style recalculation,
 *   layout and all tasks, the number of layouts and style recalculations, and the JS heap.
 * - `traceLongTasks`: a Chrome trace (Tracing domain) of a phase; every main-thread task over 50 ms is broken
 *   down by the self time of the trace events inside it (script, GC, style, layout, paint, parsing...), so a
 *   long task is attributed instead of guessed at. A long task with little inside it was the thread waiting
 *   for the CPU (the machine is shared), not the page working.
 */

const CATEGORIES = [
  'toplevel',
  'devtools.timeline',
  'disabled-by-default-devtools.timeline',
  'v8',
  'v8.execute',
  'disabled-by-default-v8.gc',
  'blink',
  'blink.user_timing',
];

export async function metrics(cdp) {
  const { metrics: list } = await cdp.send('Performance.getMetrics');
  return Object.fromEntries(list.map((m) => [m.name, m.value]));
}

/** Main-thread work in a phase from two getMetrics readings (durations in ms, heap in MB). */
export function metricsDelta(a, b) {
  const ms = (k) => Math.round(((b[k] ?? 0) - (a[k] ?? 0)) * 1000);
  return {
    wallMs: ms('Timestamp'),
    taskMs: ms('TaskDuration'),
    scriptMs: ms('ScriptDuration'),
    styleMs: ms('RecalcStyleDuration'),
    layoutMs: ms('LayoutDuration'),
    styleRecalcs: (b.RecalcStyleCount ?? 0) - (a.RecalcStyleCount ?? 0),
    layouts: (b.LayoutCount ?? 0) - (a.LayoutCount ?? 0),
    heapUsedMB: Math.round((b.JSHeapUsedSize ?? 0) / 1e5) / 10,
    heapTotalMB: Math.round((b.JSHeapTotalSize ?? 0) / 1e5) / 10,
    domNodes: b.Nodes ?? 0,
  };
}

/** Runs `fn` under a trace and returns its result with the long tasks' breakdown. */
export async function traceLongTasks(cdp, fn, thresholdMs = 50) {
  const events = [];
  const onData = (e) => {
    for (const ev of e.value) events.push(ev);
  };
  cdp.on('Tracing.dataCollected', onData);
  const complete = new Promise((resolve) => cdp.once('Tracing.tracingComplete', resolve));
  await cdp.send('Tracing.start', {
    transferMode: 'ReportEvents',
    traceConfig: { includedCategories: CATEGORIES, recordMode: 'recordAsMuchAsPossible' },
  });
  const result = await fn();
  await cdp.send('Tracing.end');
  await complete;
  cdp.off('Tracing.dataCollected', onData);
  return { result, longTasks: attribute(events, thresholdMs) };
}

const TOP = new Set(['RunTask', 'ThreadControllerImpl::RunTask']);

function attribute(events, thresholdMs) {
  const mains = new Set();
  for (const e of events) {
    if (e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain') mains.add(`${e.pid}:${e.tid}`);
  }
  // Renderers that ran script of an http(s) page (the page under test); a long task in another renderer's main
  // thread (a browser-internal page, e.g. one with custom elements) is marked, not the page's.
  const pagePids = new Set();
  for (const e of events) {
    const url = e.args?.data?.url;
    if (typeof url === 'string' && url.startsWith('http') && (e.name === 'FunctionCall' || e.name === 'EvaluateScript'))
      pagePids.add(e.pid);
  }
  const byThread = new Map();
  for (const e of events) {
    const key = `${e.pid}:${e.tid}`;
    if (!mains.has(key) || e.ph !== 'X' || typeof e.dur !== 'number') continue;
    let list = byThread.get(key);
    if (!list) byThread.set(key, (list = []));
    list.push(e);
  }
  const out = [];
  const total = new Map();
  let taskUs = 0;
  let cpuUs = 0;
  for (const list of byThread.values()) {
    list.sort((a, b) => a.ts - b.ts || b.dur - a.dur);
    let coveredUntil = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < list.length; i++) {
      const task = list[i];
      // The outermost task only (Chromium nests RunTask events of the same task).
      if (!TOP.has(task.name) || task.ts < coveredUntil) continue;
      coveredUntil = task.ts + task.dur;
      const end = task.ts + task.dur;
      const inside = [];
      for (let j = i + 1; j < list.length && list[j].ts < end; j++) inside.push(list[j]);
      taskUs += task.dur;
      cpuUs += task.tdur ?? 0;
      accumulate(total, task, inside);
      if (task.dur < thresholdMs * 1000) continue;
      out.push({
        at: Math.round(task.ts / 1000),
        startUs: task.ts,
        endUs: end,
        ms: Math.round(task.dur / 100) / 10,
        // Thread CPU time: far below the wall time, the thread was waiting for a CPU, not working.
        cpuMs: typeof task.tdur === 'number' ? Math.round(task.tdur / 100) / 10 : null,
        ...selfTimes(task, inside),
        ...(pagePids.has(task.pid) ? {} : { otherRenderer: true }),
      });
    }
  }
  out.sort((a, b) => a.at - b.at);
  // The whole phase: all main-thread tasks, by self time, with their wall and CPU time.
  out.phase = { taskMs: Math.round(taskUs / 1000), cpuMs: Math.round(cpuUs / 1000), selfMs: top(total, 10) };
  return out;
}

/** Self time per event name inside a task (nested events subtract from their parent). */
function selfTimes(task, inside) {
  const self = new Map();
  accumulate(self, task, inside);
  return { selfMs: top(self, 6) };
}

function top(self, n) {
  return [...self.entries()]
    .filter(([, us]) => us >= 1000)
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, us]) => `${name} ${Math.round(us / 100) / 10}`)
    .join(', ');
}

function accumulate(self, task, inside) {
  const stack = [{ name: '(task, nothing traced inside)', end: task.ts + task.dur, self: task.dur }];
  const pop = (until) => {
    while (stack.length > 1 && stack[stack.length - 1].end <= until) {
      const done = stack.pop();
      self.set(done.name, (self.get(done.name) ?? 0) + done.self);
    }
  };
  for (const e of inside) {
    pop(e.ts);
    const parent = stack[stack.length - 1];
    const dur = Math.min(e.dur, parent.end - e.ts);
    parent.self -= dur;
    stack.push({ name: e.name, end: e.ts + dur, self: dur });
  }
  pop(Number.POSITIVE_INFINITY);
  const root = stack[0];
  self.set(root.name, (self.get(root.name) ?? 0) + root.self);
}

/**
 * Runs `fn` under the V8 sampling profiler (Profiler domain, a sample every `intervalUs`) and returns its
 * result with the profile. `profileSelfTimes` then breaks a time window of it (a long task from the trace:
 * both use the same monotonic clock, in µs) down by function, finer than the trace's `FunctionCall`.
 */
export async function profile(cdp, fn, intervalUs = 100) {
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: intervalUs });
  await cdp.send('Profiler.start');
  const result = await fn();
  const { profile: p } = await cdp.send('Profiler.stop');
  await cdp.send('Profiler.disable');
  return { result, profile: p };
}

/**
 * Self time per function (name file:line) and per top-level caller chain of the samples in [fromUs, toUs) of
 * a CPU profile; `n` rows of each.
 */
export function profileSelfTimes(p, fromUs = Number.NEGATIVE_INFINITY, toUs = Number.POSITIVE_INFINITY, n = 15) {
  const byId = new Map(p.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of p.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const label = (node) => {
    const f = node.callFrame;
    const file = f.url ? f.url.slice(f.url.lastIndexOf('/') + 1) : '';
    return `${f.functionName || '(anonymous)'}${file ? ` ${file}:${f.lineNumber + 1}` : ''}`;
  };
  const self = new Map();
  // Total (inclusive) time per function, each function counted once per sample.
  const total = new Map();
  let t = p.startTime;
  let inWindowUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    const dt = p.timeDeltas[i + 1] ?? 0;
    if (t < fromUs || t >= toUs) continue;
    inWindowUs += dt;
    const node = byId.get(p.samples[i]);
    const name = label(node);
    self.set(name, (self.get(name) ?? 0) + dt);
    const seen = new Set();
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const l = label(byId.get(id));
      if (seen.has(l)) continue;
      seen.add(l);
      total.set(l, (total.get(l) ?? 0) + dt);
    }
  }
  const fmt = (m) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => `${name} ${Math.round(us / 100) / 10}`);
  return { sampledMs: Math.round(inWindowUs / 100) / 10, self: fmt(self), total: fmt(total) };
}
