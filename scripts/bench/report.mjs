#!/usr/bin/env node
// report.mjs - turns scripts/bench/run's JSON lines into docs/benchmarks.md
// (machine, method, where each target of issue 7 stands, the crosstalk/nchan
// table) and docs/bench.png (gnuplot).
//
// usage: node scripts/bench/report.mjs --results FILE --md FILE --png FILE [--work DIR]
//        node scripts/bench/report.mjs --results FILE --sections FILE
//
// --sections writes only the machine, "behind nginx" and "shipped defaults"
// sections to FILE (for a hand-kept section of a short run); --md keeps
// what follows a `<!-- backup benchmark:` or `<!-- kept:` marker of the
// file it replaces.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const resultsFile = opt('results');
const mdFile = opt('md');
const pngFile = opt('png');
const work = opt('work', path.dirname(resultsFile ?? '.'));
const notesFile = opt('notes');
const sectionsFile = opt('sections');
if (!resultsFile || (!mdFile && !sectionsFile)) {
  console.error('usage: report.mjs --results FILE --md FILE [--png FILE] [--work DIR]');
  process.exit(2);
}

// ------------------------------------------------------------ reading

const lines = fs.readFileSync(resultsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const machine = lines.find((l) => l.type === 'machine') ?? {};
const end = lines.find((l) => l.type === 'end') ?? {};
const runs = []; // summaries with their steps
let pending = [];
for (const l of lines) {
  if (l.type === 'step') pending.push(l);
  else if (l.type === 'summary') {
    runs.push({ ...l, stepLines: pending.filter((s) => s.label === l.label && s.transport === l.transport) });
    pending = [];
  }
}
const skipped = lines.filter((l) => l.type === 'skipped');
const wrks = lines.filter((l) => l.type === 'wrk');

const TRANSPORTS = ['sse', 'ws', 'longpoll', 'shortpoll'];
const TNAME = { sse: 'SSE', ws: 'WebSocket', longpoll: 'long poll', shortpoll: 'short poll (1 s)' };
const ramps = runs.filter((r) => r.mode === 'ramp');
/** The run of a cell; of repeated runs, the one with the best passing step (the least disturbed). */
const find = (label, t, n, size, mode = 'ramp') => {
  const all = runs.filter((r) => r.label === label && r.transport === t && r.n === n && r.size === size && r.mode === mode);
  const score = (r) => r.best?.deliveries_per_s ?? (r.closed_loop?.requests_per_s ?? -1);
  return all.sort((a, b) => score(b) - score(a))[0];
};
const repeats = Math.max(1, ...runs.map((r) => runs.filter((x) => x.label === r.label && x.transport === r.transport &&
  x.n === r.n && x.size === r.size && x.mode === r.mode).length));
const ns = [...new Set(ramps.map((r) => r.n))].sort((a, b) => a - b);
const sizes = [...new Set(ramps.map((r) => r.size))].sort((a, b) => a - b);

// ------------------------------------------------------------ numbers

const fmtInt = (x) => (x === null || x === undefined || Number.isNaN(x) ? '–' : Math.round(x).toLocaleString('en-US'));
const fmtMs = (x) => (x === null || x === undefined ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const fmtRatio = (x) => (x === null || !Number.isFinite(x) ? '–' : `${x.toFixed(2)}×`);
const kib = (n) => (n >= 1024 ? `${n / 1024} KiB` : `${n} B`);

/** Best deliveries/s of a step that passed (every delivery in time, p99 under the SLO). */
const bestPass = (r) => r?.best?.deliveries_per_s ?? null;
/** Best deliveries/s of a step that delivered everything in time, whatever its p99. */
const bestKeptUp = (r) => {
  if (!r) return null;
  const ok = r.stepLines.filter((s) => s.pub_errors === 0 && s.deliveries >= s.expected && s.expected > 0);
  return ok.length ? Math.max(...ok.map((s) => s.deliveries_per_s)) : null;
};
/** p99 of both at the highest rate each passed (ramp steps have the same rates). */
const commonP99 = (a, b) => {
  if (!a || !b) return null;
  let best = null;
  for (const s of a.stepLines) {
    if (!s.pass) continue;
    const t = b.stepLines.find((x) => x.pass && Math.abs(x.rate - s.rate) < 1e-6);
    if (t && (!best || s.rate > best.rate)) best = { rate: s.rate, dps: s.rate * a.n, a: s.lat_ms.p99, b: t.lat_ms.p99 };
  }
  return best;
};
/** Server CPU per delivery of both at the highest rate both kept up with. */
const commonCpu = (a, b) => {
  if (!a || !b) return null;
  const kept = (s) => s.pub_errors === 0 && s.deliveries >= s.expected && s.expected > 0 && s.server_us_per_delivery > 0;
  let best = null;
  for (const s of a.stepLines) {
    if (!kept(s)) continue;
    const t = b.stepLines.find((x) => kept(x) && Math.abs(x.rate - s.rate) < 1e-6);
    if (t && (!best || s.rate > best.rate)) best = { rate: s.rate, dps: s.rate * a.n, a: s.server_us_per_delivery, b: t.server_us_per_delivery };
  }
  return best;
};
/** A best step where the client used most of its core may measure the client. */
const clientNote = (r) => {
  if (!r?.best) return '';
  const st = r.stepLines.find((x) => x.pass && Math.abs(x.deliveries_per_s - r.best.deliveries_per_s) < 1);
  return st && st.cpu_client > 0.9 ? ' (client-bound?)' : '';
};
const lossNote = (r) => (!r ? '' : r.lost || r.dups || r.unknown ? ` **lost ${r.lost}, dup ${r.dups}**` : '');
const fatalNote = (r) => (r?.fatal ? ` (stopped: ${r.fatal})` : '') +
  (r?.sub_errors ? ` (${r.sub_errors} error answers to subscribers)` : '');

// ------------------------------------------------------------ targets

const targets = [];
{
  // 1. SSE and WebSocket fan-out: 2x nchan, p99 no worse
  const cells = [];
  for (const t of ['sse', 'ws']) {
    for (const n of ns) {
      for (const size of sizes) {
        const c = find('crosstalk', t, n, size);
        const x = find('nchan', t, n, size);
        if (!c || !x) continue;
        const ratio = bestPass(x) ? (bestPass(c) ?? 0) / bestPass(x) : null;
        const p = commonP99(c, x);
        const cpu = commonCpu(c, x);
        const eff = cpu ? cpu.b / cpu.a : null;
        cells.push({ t, n, size, ratio, p, eff, met: ratio !== null && ratio >= 2 && p !== null && p.a <= p.b && eff !== null && eff >= 2 });
      }
    }
  }
  const wsSkipped = skipped.some((s) => s.transport === 'ws' && s.label === 'crosstalk');
  const met = cells.filter((c) => c.met).length;
  const detail = cells.map((c) => `${TNAME[c.t]} N=${fmtInt(c.n)} ${kib(c.size)}: ${fmtRatio(c.ratio)}` +
    (c.p ? `, p99 ${fmtMs(c.p.a)} vs ${fmtMs(c.p.b)} ms at ${fmtInt(c.p.dps)}/s` : ', no common passing rate') +
    (c.eff !== null ? `, CPU efficiency ${fmtRatio(c.eff)}` : '')).join('; ');
  targets.push({
    name: 'WebSocket and SSE fan-out ≥ 2× nchan deliveries/s at equal N and size, p99 no worse',
    status: cells.length === 0 ? 'not measured' : met === cells.length && !wsSkipped ? 'met' : `not met (${met} of ${cells.length} cells${wsSkipped ? '; WebSocket not served yet' : ''})`,
    detail: detail || '–',
  });
}
{
  // 2. Long poll: 10,000 waiting clients answered within 100 ms (p99)
  const r = find('crosstalk', 'longpoll', 10000, 100, 'fixed');
  const x = find('nchan', 'longpoll', 10000, 100, 'fixed');
  const st = r?.stepLines?.[0];
  const sx = x?.stepLines?.[0];
  targets.push({
    name: 'Long poll: 10,000 waiting clients all answered within 100 ms (p99) of a publish',
    status: !st ? 'not measured (the full run does it; --quick does not)' : st.lat_ms.p99 <= 100 && r.lost === 0 ? 'met' : 'not met',
    detail: !st ? '–' : `crosstalk: p99 of an answer ${fmtMs(st.lat_ms.p99)} ms (p50 ${fmtMs(st.lat_ms.p50)}, max ${fmtMs(st.lat_ms.max)}); ` +
      `the last of the 10,000 answered after ${fmtMs(st.fanout_ms.p50)} ms (median over ${st.published} publishes, p99 ${fmtMs(st.fanout_ms.p99)}); ` +
      `lost ${r.lost}, duplicated ${r.dups}` +
      (sx ? `. nchan: p99 ${fmtMs(sx.lat_ms.p99)} ms, last answered after ${fmtMs(sx.fanout_ms.p50)} ms (p99 ${fmtMs(sx.fanout_ms.p99)})` : ''),
  });
}
{
  // 3. Idle connections: <= 4 KiB of daemon RSS each at 10,000
  const rows = [];
  for (const t of ['sse', 'ws']) {
    for (const size of sizes) {
      const r = find('crosstalk', t, 10000, size);
      const x = find('nchan', t, 10000, size);
      if (r && r.rss_per_conn_bytes >= 0) rows.push({ t, size, b: r.rss_per_conn_bytes, nb: x?.rss_per_conn_bytes });
    }
  }
  const fallback = !rows.length ? ramps.filter((r) => r.label === 'crosstalk' && (r.transport === 'sse' || r.transport === 'ws'))
    .sort((a, b) => b.n - a.n)[0] : null;
  const per = (t) => rows.filter((x) => x.t === t);
  const verdict = (t) => (per(t).length ? `${TNAME[t]} ${per(t).every((x) => x.b <= 4096) ? 'met' : 'not met'}` : null);
  targets.push({
    name: 'Idle connections: ≤ 4 KiB of daemon RSS per idle WebSocket or SSE connection at 10,000',
    status: !rows.length ? 'not measured at 10,000'
      : rows.every((x) => x.b <= 4096) ? 'met' : `not met (${[verdict('sse'), verdict('ws')].filter(Boolean).join(', ')})`,
    detail: rows.length ? rows.map((x) => `${TNAME[x.t]} (${kib(x.size)} run): ${fmtInt(x.b)} bytes/connection` +
      (x.nb !== undefined ? ` (nchan ${fmtInt(x.nb)})` : '')).join('; ')
      : fallback ? `at ${fmtInt(fallback.n)}: ${TNAME[fallback.transport]} ${fmtInt(fallback.rss_per_conn_bytes)} bytes/connection` : '–',
  });
}
const FRONT_LABEL = 'crosstalk+nginx';
const FRONT_TARGET = 0.6;
const fronts = ramps.filter((r) => r.label === FRONT_LABEL);
/** A front cell with its direct twin and the ratio of their best passing rates. */
const frontCell = (f) => {
  const c = find('crosstalk', f.transport, f.n, f.size);
  const ratio = bestPass(c) ? (bestPass(f) ?? 0) / bestPass(c) : null;
  return { f, c, ratio, met: ratio !== null && ratio >= FRONT_TARGET };
};
const frontCells = () => {
  const seen = new Set();
  return fronts.filter((f) => {
    const k = `${f.transport}/${f.n}/${f.size}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  }).map((f) => frontCell(find(FRONT_LABEL, f.transport, f.n, f.size)));
};
{
  // issue 14: behind the shipped nginx config, >= 0.6x of the direct rate
  const cells = frontCells();
  const met = cells.filter((x) => x.met).length;
  targets.push({
    name: `Behind the shipped nginx config: every transport ≥ ${FRONT_TARGET}× of its direct deliveries/s (issue 14)`,
    status: !cells.length ? 'not measured' : met === cells.length ? 'met' : `not met (${met} of ${cells.length} cells)`,
    detail: cells.map((x) => `${TNAME[x.f.transport]} N=${fmtInt(x.f.n)} ${kib(x.f.size)}: ${fmtRatio(x.ratio)}`).join('; ') || '–',
  });
}
{
  // 4. Short poll: >= 50,000 requests/s of since= polls with nothing new
  const r = runs.find((x) => x.label === 'crosstalk' && x.mode === 'closed');
  const x = runs.find((y) => y.label === 'nchan' && y.mode === 'closed');
  const w = wrks.find((y) => y.label === 'crosstalk');
  const wn = wrks.find((y) => y.label === 'nchan');
  const best = Math.max(r?.closed_loop?.requests_per_s ?? 0, w?.requests_per_s ?? 0);
  targets.push({
    name: 'Short poll: ≥ 50,000 requests/s of `since=` polls with nothing new, on one core',
    status: !r && !w ? 'not measured' : best >= 50000 ? 'met' : 'not met',
    detail: [
      r ? `crosstalk-bench closed loop, 100 connections: ${fmtInt(r.closed_loop.requests_per_s)} requests/s (p99 ${fmtMs(r.closed_loop.rtt_ms.p99)} ms, server CPU ${Math.round(r.closed_loop.cpu_server * 100)} % of a core incl. Redis)` : null,
      w ? `wrk -c100: ${fmtInt(w.requests_per_s)} requests/s${w.non2xx ? ` (${w.non2xx} non-2xx)` : ''}` : null,
      x ? `nchan (interval poll, 304): ${fmtInt(x.closed_loop.requests_per_s)} requests/s` : null,
      wn ? `nchan with wrk: ${fmtInt(wn.requests_per_s)} requests/s` : null,
    ].filter(Boolean).join('; ') || '–',
  });
}

// ------------------------------------------------------------ markdown

const md = [];
md.push('# Benchmarks: crosstalk against nginx + nchan');
md.push('');
md.push('Written by `scripts/bench/run` (do not edit by hand: run it again). One client,');
md.push('`crosstalk-bench`, measures crosstalkd and nginx+nchan on the same machine in the');
md.push('same run, cell after cell, so both see the same conditions.');
md.push('');
md.push('## Machine');
md.push('');
md.push('| | |');
md.push('|---|---|');
md.push(`| date | ${machine.date ?? '?'} (commit ${machine.commit ?? '?'}${machine.dirty ? `, with uncommitted changes to ${machine.dirty}` : ''}) |`);
md.push(`| cores (\`nproc\`) | ${machine.nproc ?? '?'} |`);
md.push(`| CPU | ${machine.cpu ?? '?'} |`);
md.push(`| memory | ${machine.mem ?? '?'} |`);
md.push(`| kernel | ${machine.kernel ?? '?'} |`);
md.push(`| placement | ${machine.placement ?? '?'} |`);
md.push(`| crosstalkd | ${machine.crosstalkd ?? '?'}, libevent ${machine.libevent ?? '?'}, ${machine.cc ?? '?'}, -O2 |`);
md.push(`| nginx + nchan | ${machine.nginx ?? '?'}, libnginx-mod-nchan ${machine.nchan ?? '?'} (one worker process) |`);
md.push(`| Redis | ${machine.redis ?? '?'} (appendonly yes, fsync every second) |`);
md.push(`| wrk | ${machine.wrk ?? '?'} |`);
md.push(`| mode | ${machine.mode ?? '?'}, ${machine.step_s ?? '?'} s per ramp step${repeats > 1 ? `, every cell run ${repeats} times (the best of each side is shown)` : ''} |`);
md.push(`| load average | ${machine.loadavg_start ?? '?'} at the start, ${end.loadavg_end ?? '?'} at the end |`);
md.push('');
const loads = runs.map((r) => r.loadavg?.[0]).filter((x) => x >= 0);
const maxLoad = loads.length ? Math.max(...loads) : 0;
// the benchmark itself keeps about two processes busy (a server and the client)
if (maxLoad > Math.min(machine.nproc ?? 2, 2) + 0.5) {
  md.push(`**The machine was shared**: the 1-minute load average reached ${maxLoad.toFixed(1)} on ${machine.nproc} cores`);
  md.push('during the run, of which the benchmark itself accounts for about 2 (a server and');
  md.push('the client): other work was running. Latency percentiles and pass/fail are the');
  md.push('most disturbed by it, for both servers alike; each run\'s load average is in the');
  md.push('raw lines at the end.');
  md.push('');
}

md.push('## Where the targets of issues 7 and 14 stand');
md.push('');
md.push('| target | status | numbers |');
md.push('|---|---|---|');
for (const t of targets) md.push(`| ${t.name} | **${t.status}** | ${t.detail} |`);
md.push('');

md.push('## How it is measured');
md.push('');
md.push('- **Open loop.** Messages are published at a fixed rate from scheduled send times (over');
md.push('  16 keep-alive connections, each with one request in flight); a');
md.push('  message\'s latency runs from its *scheduled* time to its arrival, so a stall in the');
md.push('  publisher or the server is counted, not hidden. Each text carries a sequence number;');
md.push('  every subscriber keeps a bitmap of what it got, so loss and duplicates are exact.');
md.push('- **Ramp.** A run starts at about 10,000 deliveries/s (rate × N) and doubles the rate');
md.push('  every step while the step *passes*: every publish acknowledged, every subscriber has');
md.push('  every message within the grace period after the step, and p99 ≤ 100 ms (short poll:');
md.push('  100 ms + its 1 s interval). At 10,000 subscribers the bound is 1 s: there one fan-out');
md.push('  alone takes 100–200 ms on one core for both servers, so nothing would pass 100 ms.');
md.push('  A failed step is run once more at the same rate, and only a second failure counts');
md.push('  (one stall on a shared machine does not end a ramp). After that it bisects between the last pass');
md.push('  and the failure. **deliveries/s** is the best passing step\'s deliveries over its');
md.push('  duration; **kept up** is the best step that delivered everything in time whatever its p99.');
md.push('- **(client-bound?)** marks a best step in which the client used over 90 % of its core:');
md.push('  there the number may be the client\'s limit rather than the server\'s.');
md.push('- **p99 at equal load** compares the two servers at the highest rate both passed');
md.push('  (the ramp steps are the same for both).');
md.push('- **Server µs per delivery** is the server\'s CPU time (the time its threads ran, in');
md.push('  nanoseconds from `/proc/PID/task/*/schedstat`; crosstalkd *and* its Redis) over a step divided by its deliveries,');
md.push('  at the highest rate both servers kept up with. Its ratio is the **efficiency**: nchan\'s');
md.push('  µs / crosstalk\'s; above 1, crosstalk does a delivery with less CPU. Other load on the');
md.push('  machine disturbs it less than latency or pass/fail, but does disturb it (cache and');
md.push('  scheduler), and it falls as the rate rises (fixed costs spread): only equal rates compare.');
md.push('- The SSE/WebSocket target counts as met in a cell only when the measured ratio is ≥ 2,');
md.push('  p99 is no worse, *and* the efficiency is ≥ 2.');
md.push('- **RSS/conn** is (VmRSS with every subscriber connected and idle − VmRSS before) / N,');
md.push('  of crosstalkd alone (not Redis) and of the nchan worker.');
md.push('- **req/d** and **B/d**: HTTP requests and bytes (headers included) the subscribers');
md.push('  received per delivered message. crosstalk sends each event as its JSON object');
md.push('  (id, room, type, from, text, ts); nchan sends the published body as is, so its');
md.push('  bytes per delivery are lower by design.');
md.push('- crosstalk stores every message in Redis (XADD + PUBLISH in one script) before any');
md.push('  subscriber sees it, and its long and short polls ask Redis; nchan keeps messages in');
md.push('  its shared memory. Server CPU for crosstalk includes Redis.');
md.push('- crosstalk runs had every subscriber as the same user (`--users 1`): with distinct');
md.push('  users, every SSE/WebSocket join announces presence to the whole room (see the notes).');
md.push('');

md.push('## crosstalk / nchan, by transport, subscribers and message size');
md.push('');
md.push('| transport | N | size | crosstalk deliveries/s | nchan deliveries/s | ratio | kept up: crosstalk / nchan | p99 ms at equal load: crosstalk / nchan | server µs per delivery at equal load: crosstalk / nchan (efficiency) | connect p99 ms: crosstalk / nchan | RSS/conn B: crosstalk / nchan | req/d | B/d: crosstalk / nchan |');
md.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const t of TRANSPORTS) {
  for (const n of ns) {
    for (const size of sizes) {
      const c = find('crosstalk', t, n, size);
      const x = find('nchan', t, n, size);
      const sk = skipped.find((s) => s.label === 'crosstalk' && s.transport === t && s.n === n && s.size === size);
      if (!c && !x && !sk) continue;
      const p = commonP99(c, x);
      const cpu = commonCpu(c, x);
      const ratio = bestPass(x) && c ? (bestPass(c) ?? 0) / bestPass(x) : null;
      md.push(`| ${TNAME[t]} | ${fmtInt(n)} | ${kib(size)} | ${sk ? `not served yet` : fmtInt(bestPass(c))}${clientNote(c)}${lossNote(c)}${fatalNote(c)} | ` +
        `${fmtInt(bestPass(x))}${clientNote(x)}${lossNote(x)}${fatalNote(x)} | ${fmtRatio(ratio)} | ${fmtInt(bestKeptUp(c))} / ${fmtInt(bestKeptUp(x))} | ` +
        `${p ? `${fmtMs(p.a)} / ${fmtMs(p.b)} (at ${fmtInt(p.dps)}/s)` : '–'} | ` +
        `${cpu ? `${cpu.a.toFixed(1)} / ${cpu.b.toFixed(1)} (${fmtRatio(cpu.b / cpu.a)}, at ${fmtInt(cpu.dps)}/s)` : '–'} | ` +
        `${fmtMs(c?.connect_ms?.p99)} / ${fmtMs(x?.connect_ms?.p99)} | ${fmtInt(c?.rss_per_conn_bytes)} / ${fmtInt(x?.rss_per_conn_bytes)} | ` +
        `${c ? c.requests_per_delivery.toFixed(2) : '–'} | ${fmtInt(c?.bytes_per_delivery)} / ${fmtInt(x?.bytes_per_delivery)} |`);
    }
  }
}
md.push('');
md.push('![deliveries/s by subscribers, crosstalk solid, nchan dashed](bench.png)');
md.push('');

const frontMd = [];
if (fronts.length) {
  frontMd.push('## crosstalk direct and behind the shipped nginx config');
  frontMd.push('');
  frontMd.push('A standard cell of every transport: nginx + nchan is itself an nginx, so behind');
  frontMd.push('nginx is how users compare. `nginx/crosstalk.standalone.conf.in` (the template the');
  frontMd.push('tests and `scripts/demo` render) with one worker, on the same core as crosstalkd and');
  frontMd.push('Redis, proxying to crosstalkd\'s Unix socket as shipped (to its port with `--front-tcp`;');
  frontMd.push('the machine line says which), the whole API under its `/d/` prefix (the streams and the long poll take the');
  frontMd.push('same locations as without it; publishes and short polls reach crosstalkd rather');
  frontMd.push('than the FastCGI pool). Same daemon settings and ramp as the direct cell. The');
  frontMd.push(`target of issue 14: via nginx ≥ ${FRONT_TARGET}× of the direct rate, every transport.`);
  frontMd.push('');
  frontMd.push(`| transport | N | size | direct deliveries/s | via nginx deliveries/s | via / direct (≥ ${FRONT_TARGET}×) | p99 ms at equal load: direct / via | server µs per delivery at equal load: direct / via (incl. nginx) |`);
  frontMd.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const { f, c, ratio, met } of frontCells()) {
    const p = commonP99(c, f);
    const cpu = commonCpu(c, f);
    frontMd.push(`| ${TNAME[f.transport]} | ${fmtInt(f.n)} | ${kib(f.size)} | ${fmtInt(bestPass(c))}${clientNote(c)}${fatalNote(c)} | ` +
      `${fmtInt(bestPass(f))}${clientNote(f)}${lossNote(f)}${fatalNote(f)} | ` +
      `${ratio === null ? '–' : `${fmtRatio(ratio)} ${met ? 'met' : '**not met**'}`} | ${p ? `${fmtMs(p.a)} / ${fmtMs(p.b)}` : '–'} | ` +
      `${cpu ? `${cpu.a.toFixed(1)} / ${cpu.b.toFixed(1)} (at ${fmtInt(cpu.dps)}/s)` : '–'} |`);
  }
  for (const x of skipped.filter((y) => y.label === FRONT_LABEL)) {
    frontMd.push(`| ${TNAME[x.transport]} | ${fmtInt(x.n)} | ${kib(x.size)} | – | skipped: ${x.why} | – | – | – |`);
  }
  frontMd.push('');
}

const defaultRuns = runs.filter((r) => / \(defaults\)$/.test(r.label));
if (defaultRuns.length) {
  frontMd.push('## crosstalk with the shipped defaults (`scripts/bench/run --defaults`)');
  frontMd.push('');
  frontMd.push('crosstalkd started with no knob changed, direct and behind the shipped nginx config,');
  frontMd.push('at a fixed rate of half `rate_send_per_sec`; `crosstalk-bench --per-user` puts at');
  frontMd.push('most `longpolls_per_token` long polls or `streams_per_token` streams on one user');
  frontMd.push('token (the users are registered within `rate_register_per_min`). A run past what');
  frontMd.push('the defaults allow stops at the first 429 (or 503 while setting up) with the');
  frontMd.push('daemon\'s error, shown here.');
  frontMd.push('');
  frontMd.push('| transport | N | size | front | users | msgs/s | result | p50 / p99 ms | lost / dup |');
  frontMd.push('|---|---:|---:|---|---:|---:|---|---:|---:|');
  for (const r of defaultRuns) {
    const st = r.stepLines[0];
    frontMd.push(`| ${TNAME[r.transport]} | ${fmtInt(r.n)} | ${kib(r.size)} | ${r.label.startsWith(FRONT_LABEL) ? 'nginx' : 'direct'} | ` +
      `${fmtInt(r.users)} | ${st ? st.rate : '–'} | ${r.fatal ? `stopped: ${r.fatal.replaceAll('|', '\\|')}` : r.ok && st?.pass ? 'ok' : `failed${st?.why ? `: ${st.why}` : ''}`} | ` +
      `${st ? `${fmtMs(st.lat_ms.p50)} / ${fmtMs(st.lat_ms.p99)}` : '–'} | ${r.lost} / ${r.dups} |`);
  }
  frontMd.push('');
}
// scripts/bench/run --at D: every server at the same fixed deliveries/s.
const fixedRuns = runs.filter((r) => / \(at \d+\/s\)$/.test(r.label));
if (fixedRuns.length) {
  const at = Number(/\(at (\d+)\/s\)$/.exec(fixedRuns[0].label)[1]);
  const base = (r) => r.label.replace(/ \(at \d+\/s\)$/, '');
  const cellOf = (b, t, n) => fixedRuns.find((r) => base(r) === b && r.transport === t && r.n === n);
  const us = (r) => {
    const st = r?.stepLines[0];
    return st && st.server_us_per_delivery > 0 ? st.server_us_per_delivery : null;
  };
  const kept = (r) => {
    const st = r?.stepLines[0];
    return !!st && st.pub_errors === 0 && st.deliveries >= st.expected && st.expected > 0;
  };
  const p99 = (r) => (kept(r) ? fmtMs(r.stepLines[0].lat_ms.p99) : r ? 'fell behind' : '–');
  const usCell = (r) => (us(r) === null ? '–' : `${us(r).toFixed(1)}${kept(r) ? '' : ' (fell behind)'}`);
  frontMd.push(`## Server CPU per delivery at ${fmtInt(at)} deliveries/s (\`scripts/bench/run --at ${at}\`)`);
  frontMd.push('');
  frontMd.push('Every server at the same fixed rate (msgs/s = deliveries/s ÷ N), 100-byte messages,');
  frontMd.push('one run per cell. "µs/d" is server CPU per delivered message: crosstalkd + Redis;');
  frontMd.push('nchan\'s one nginx worker; behind nginx, crosstalkd + Redis + the front\'s one worker;');
  frontMd.push('the floor, `crosstalk-floor` (one epoll loop, each message framed once and sent to');
  frontMd.push('each subscriber with one `send`: the least a server can do; SSE and WebSocket only).');
  frontMd.push('The targets are crosstalk ≤ 0.8× nchan\'s µs/d and ≤ 1.5× the floor\'s. "fell behind":');
  frontMd.push('not every message reached every subscriber within the grace period.');
  frontMd.push('');
  frontMd.push('| transport | N | msgs/s | µs/d crosstalk | µs/d nchan | crosstalk / nchan (≤ 0.8×) | µs/d floor | crosstalk / floor (≤ 1.5×) | µs/d behind nginx | p99 ms: crosstalk / nchan / floor / behind nginx | lost / dup: crosstalk, nchan, floor, behind nginx |');
  frontMd.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const keys = [...new Map(fixedRuns.map((r) => [`${r.transport} ${r.n}`, r])).values()]
    .sort((a, b) => TRANSPORTS.indexOf(a.transport) - TRANSPORTS.indexOf(b.transport) || a.n - b.n);
  for (const k of keys) {
    const c = cellOf('crosstalk', k.transport, k.n);
    const x = cellOf('nchan', k.transport, k.n);
    const f = cellOf(FRONT_LABEL, k.transport, k.n);
    const fl = cellOf('floor', k.transport, k.n);
    const verdict = (a, b, target) => {
      const ratio = us(a) !== null && us(b) !== null ? us(a) / us(b) : null;
      return ratio === null ? '–' : `${fmtRatio(ratio)} ${ratio <= target ? 'met' : '**not met**'}`;
    };
    const losses = [c, x, fl, f].map((r) => (r ? `${r.lost}/${r.dups}` : '–')).join(', ');
    const rate = (c ?? x)?.stepLines[0]?.rate;
    frontMd.push(`| ${TNAME[k.transport]} | ${fmtInt(k.n)} | ${rate ?? '–'} | ${usCell(c)} | ${usCell(x)} | ${verdict(c, x, 0.8)} | ` +
      `${usCell(fl)} | ${verdict(c, fl, 1.5)} | ` +
      `${f ? usCell(f) : 'skipped'} | ${p99(c)} / ${p99(x)} / ${fl ? p99(fl) : '–'} / ${f ? p99(f) : '–'} | ${losses} |`);
  }
  frontMd.push('');
}
md.push(...frontMd);

const lost = runs.filter((r) => r.lost || r.dups || r.unknown);
md.push('## Messages lost or duplicated');
md.push('');
if (!lost.length) {
  md.push(`None: every subscriber of every run (${runs.filter((r) => r.mode !== 'closed').length} runs) had every acknowledged message exactly once.`);
} else {
  for (const r of lost) md.push(`- ${r.label} ${r.transport} N=${r.n} ${kib(r.size)}: lost ${r.lost}, duplicated ${r.dups}, unknown ${r.unknown}`);
}
const stopped = runs.filter((r) => r.fatal);
if (stopped.length) {
  md.push('');
  md.push('Runs that stopped early:');
  for (const r of stopped) md.push(`- ${r.label} ${r.transport} N=${r.n} ${kib(r.size)}: ${r.fatal}`);
}
md.push('');

if (notesFile && fs.existsSync(notesFile)) {
  md.push(fs.readFileSync(notesFile, 'utf8').trim());
  md.push('');
}

md.push('## Raw results');
md.push('');
md.push('<details><summary>one JSON line per run (crosstalk-bench --json summaries, wrk)</summary>');
md.push('');
md.push('```');
for (const l of lines) if (l.type !== 'step') md.push(JSON.stringify(l));
md.push('```');
md.push('</details>');
md.push('');

// ------------------------------------------------------------ chart

const plotNote = [];
if (pngFile) {
  const series = [];
  for (const t of TRANSPORTS) for (const label of ['crosstalk', 'nchan']) series.push({ t, label });
  const dat = path.join(work, 'bench.dat');
  const rows = [];
  for (const size of sizes) {
    rows.push(`# size ${size}`);
    for (const n of ns) {
      rows.push([n, ...series.map((s) => bestPass(find(s.label, s.t, n, size)) ?? '?')].join(' '));
    }
    rows.push('', '');
  }
  fs.writeFileSync(dat, rows.join('\n'));
  const colors = { sse: '#1f77b4', ws: '#d62728', longpoll: '#2ca02c', shortpoll: '#9467bd' };
  const plots = (idx) => series.map((s, i) => `'${dat}' index ${idx} using 1:${i + 2} with linespoints ` +
    `lw 2 pt ${s.label === 'crosstalk' ? 7 : 6} dt ${s.label === 'crosstalk' ? 1 : 2} lc rgb '${colors[s.t]}' title '${s.label} ${TNAME[s.t]}'`).join(', ');
  // panels side by side, one key at the right of the last
  const left = 0.06;
  const keyw = 0.17;
  const gap = 0.07;
  const w = (1 - left - keyw - gap * (sizes.length - 1)) / sizes.length;
  const gp = [
    `set terminal pngcairo size 1400,600 font 'sans,10'`,
    `set output '${pngFile}'`,
    `set datafile missing '?'`,
    `set logscale xy`,
    `set grid`,
    `set xlabel 'subscribers (N)'`,
    `set ylabel 'deliveries/s (best passing step)'`,
    `set xtics (${ns.map((n) => `'${n}' ${n}`).join(', ')})`,
    `set xrange [${Math.min(...ns) / 1.5}:${Math.max(...ns) * 1.5}]`,
    `set format y '%.0s%c'`,
    `set tmargin at screen 0.86`,
    `set bmargin at screen 0.10`,
    `set multiplot title 'crosstalk (solid) and nginx+nchan (dashed), ${machine.nproc ?? '?'} cores: server on one, client on the other'`,
    ...sizes.flatMap((size, i) => [
      `set lmargin at screen ${(left + i * (w + gap)).toFixed(3)}`,
      `set rmargin at screen ${(left + i * (w + gap) + w).toFixed(3)}`,
      i === sizes.length - 1 ? `set key at screen 0.995,0.84 right top vertical` : `unset key`,
      `set title '${kib(size)} messages'`,
      `plot ${plots(i)}`,
    ]),
    `unset multiplot`,
  ].join('\n');
  fs.writeFileSync(path.join(work, 'bench.gp'), gp);
  const r = spawnSync('gnuplot', [path.join(work, 'bench.gp')], { encoding: 'utf8' });
  if (r.status !== 0) plotNote.push(`gnuplot failed: ${r.stderr || r.error}`);
}

// Sections other scripts write at the end (scripts/bench/backup.mjs) stay.
const kept = (() => {
  try {
    const old = fs.readFileSync(mdFile, 'utf8');
    const at = Math.min(...['<!-- backup benchmark:', '<!-- kept:'].map((m) => old.indexOf(m)).filter((i) => i >= 0));
    return Number.isFinite(at) ? old.slice(at) : '';
  } catch {
    return '';
  }
})();
if (mdFile) {
  fs.writeFileSync(mdFile, md.join('\n') + (kept ? `\n\n${kept}` : ''));
  console.error(`report.mjs: wrote ${mdFile}${pngFile && !plotNote.length ? ` and ${pngFile}` : ''}`);
}
if (sectionsFile) {
  const head = [`Machine: ${machine.nproc ?? '?'} cores, ${machine.cpu ?? '?'}, ${machine.mem ?? '?'}, kernel ${machine.kernel ?? '?'}; ` +
    `${machine.placement ?? '?'}. Date ${machine.date ?? '?'}, commit ${machine.commit ?? '?'}${machine.dirty ? ` (with uncommitted changes to ${machine.dirty})` : ''}; ` +
    `mode ${machine.mode ?? '?'}, ${machine.step_s ?? '?'} s ${/^fixed/.test(machine.mode ?? '') ? 'per run' : 'per ramp step'}; load average ${machine.loadavg_start ?? '?'} at the start, ` +
    `${end.loadavg_end ?? '?'} at the end (the benchmark itself accounts for about 2).`, ''];
  fs.writeFileSync(sectionsFile, [...head, ...frontMd.map((l) => l.replace(/^## /, '#### '))].join('\n'));
  console.error(`report.mjs: wrote ${sectionsFile}`);
}
for (const n of plotNote) console.error(`report.mjs: ${n}`);
process.exit(plotNote.length ? 1 : 0);
