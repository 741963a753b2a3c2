// chart.js - a small time chart in SVG: one line (and optional dots) per series.

const NS = 'http://www.w3.org/2000/svg';
const W = 480, H = 190;
const PAD = { l: 52, r: 10, t: 10, b: 24 };

function node(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text != null) e.textContent = text;
  return e;
}

// A round step so that about four grid lines cover 0..max.
function niceStep(max) {
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
}

// series: [{key, label, color, points: [{t, v}]}] with t in performance.now() ms.
export function renderChart(svg, series, { now, windowMs, fmt = String, dots = false, step = false, empty = 'no data yet' }) {
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const iw = W - PAD.l - PAD.r, ih = H - PAD.t - PAD.b;
  const t0 = now - windowMs;
  let max = 0;
  for (const s of series) for (const p of s.points) if (p.t >= t0 && p.v > max) max = p.v;
  const stepY = niceStep(max > 0 ? max * 1.1 : 1);
  const top = Math.max(stepY, Math.ceil((max * 1.05) / stepY) * stepY);
  const x = (t) => PAD.l + ((t - t0) / windowMs) * iw;
  const y = (v) => PAD.t + ih - (v / top) * ih;

  const parts = [];
  for (let v = 0; v <= top + 1e-9; v += stepY) {
    parts.push(node('line', { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: 'grid' }));
    parts.push(node('text', { x: PAD.l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, fmt(v)));
  }
  for (let s = 0; s <= windowMs / 1000; s += 30) {
    const xx = x(now - s * 1000);
    parts.push(node('text', { x: xx, y: H - 6, 'text-anchor': s === 0 ? 'end' : 'middle', class: 'tick' }, s === 0 ? 'now' : `-${s}s`));
  }
  parts.push(node('line', { x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: PAD.t + ih, class: 'axis' }));

  let any = false;
  for (const s of series) {
    const pts = s.points.filter((p) => p.t >= t0);
    if (!pts.length) continue;
    any = true;
    let d = '';
    pts.forEach((p, i) => {
      const px = x(p.t).toFixed(1), py = y(p.v).toFixed(1);
      if (i === 0) d += `M${px},${py}`;
      else if (step) d += `H${px}V${py}`;
      else d += `L${px},${py}`;
    });
    if (step) d += `H${x(now).toFixed(1)}`;
    const g = node('g', { 'data-series': s.key });
    g.append(node('title', {}, s.label));
    g.append(node('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 2, 'stroke-linejoin': 'round' }));
    if (dots) {
      for (const p of pts.slice(-200)) {
        g.append(node('circle', { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 2.6, fill: s.color }));
      }
    }
    parts.push(g);
  }
  if (!any) parts.push(node('text', { x: PAD.l + iw / 2, y: PAD.t + ih / 2, 'text-anchor': 'middle', class: 'empty' }, empty));
  svg.replaceChildren(...parts);
}
