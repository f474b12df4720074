// The script of the HTML report: draws the charts as SVG from the report's own data (the
// JSON embedded in the page), in the browser, with no library and no network. Each chart
// states its scales as data attributes (data-x0, data-x1, data-y1, data-plot), so a test
// can map what was drawn back to times and ms and compare it with the report.
//
// Kept as plain ES2017 in a string: it is inlined in the page and its SHA-256 goes in the
// page's Content-Security-Policy, which allows that one script and nothing else.
export const CHART_SCRIPT = String.raw`(function () {
  'use strict';
  var source = document.getElementById('report-data');
  if (!source) return;
  var data = JSON.parse(source.textContent);
  var report = data.report;
  var SVG = 'http://www.w3.org/2000/svg';
  var W = 960, H = 240, L = 66, R = 14, T = 24, B = 36;
  var PW = W - L - R, PH = H - T - B;

  function el(name, attrs, parent, text) {
    var e = document.createElementNS(SVG, name);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function round(n) { return Math.round(n * 100) / 100; }
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log(v) / Math.LN10));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }
  function fmtMs(ms) {
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (Math.round(ms / 100) / 10) + ' s';
    if (ms < 3600000) return (Math.round(ms / 6000) / 10) + ' min';
    return (Math.round(ms / 360000) / 10) + ' h';
  }
  function fmtTime(t, span) {
    var d = new Date(t).toISOString();
    if (span > 2 * 86400000) return d.slice(0, 10);
    if (span > 3 * 3600000) return d.slice(5, 16).replace('T', ' ');
    return d.slice(11, 19);
  }

  function frame(holder, cls, x0, x1, y1, yTitle) {
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + H, width: '100%', role: 'img', 'class': 'chart ' + cls,
      'data-x0': x0, 'data-x1': x1, 'data-y0': 0, 'data-y1': y1, 'data-plot': [L, T, PW, PH].join(' ') }, holder);
    var X = function (t) { return round(L + ((Math.min(Math.max(t, x0), x1) - x0) / (x1 - x0)) * PW); };
    var Y = function (v) { return round(T + PH - (Math.min(Math.max(v, 0), y1) / y1) * PH); };
    el('rect', { x: L, y: T, width: PW, height: PH, 'class': 'plot' }, svg);
    for (var i = 0; i <= 4; i++) {
      var v = (y1 * i) / 4;
      el('line', { x1: L, x2: L + PW, y1: Y(v), y2: Y(v), 'class': 'grid' }, svg);
      el('text', { x: L - 6, y: Y(v) + 4, 'class': 'ax y' }, svg, fmtMs(v));
    }
    for (var j = 0; j <= 6; j++) {
      var t = x0 + ((x1 - x0) * j) / 6;
      el('line', { x1: X(t), x2: X(t), y1: T + PH, y2: T + PH + 4, 'class': 'tick' }, svg);
      el('text', { x: X(t), y: H - 12, 'class': 'ax x' + (j === 0 ? ' first' : j === 6 ? ' last' : '') }, svg, fmtTime(t, x1 - x0));
    }
    el('text', { x: L, y: T - 8, 'class': 'ax title' }, svg, yTitle);
    return { svg: svg, X: X, Y: Y };
  }

  // A step line: one horizontal segment per point that has a value, joined by vertical
  // segments while the points follow each other; a point without a value breaks the line.
  function stepPath(points, value, step, X, Y) {
    var d = '';
    var open = false;
    for (var i = 0; i < points.length; i++) {
      var v = value(points[i]);
      if (v === null || v === undefined) { open = false; continue; }
      var a = X(points[i].t), b = X(points[i].t + step);
      d += (open ? ' V ' + Y(v) : (d ? ' ' : '') + 'M ' + a + ' ' + Y(v)) + ' H ' + b;
      open = true;
    }
    return d;
  }

  function band(svg, cls, X, start, end, title) {
    var r = el('rect', { x: X(start), y: T, width: Math.max(0.5, round(X(end) - X(start))), height: PH, 'class': cls }, svg);
    el('title', {}, r, title);
  }

  function lagChart(holder, ns, pair) {
    var step = report.settings.seriesResolutionMs, x0 = report.period.fromMs, x1 = report.period.toMs;
    var top = 0;
    pair.series.forEach(function (p) { if (p.lagMaxMs !== null && p.lagMaxMs > top) top = p.lagMaxMs; });
    var y1 = niceCeil(Math.max(top, ns.rpoTargetMs * 1.25));
    var c = frame(holder, 'lag-chart', x0, x1, y1, 'lag');
    pair.gaps.forEach(function (g) { band(c.svg, 'gap gap-' + g.cause, c.X, g.startMs, g.endMs, 'no samples (' + g.cause + '): ' + fmtMs(g.missingMs)); });
    pair.breaches.forEach(function (b) { band(c.svg, 'breach', c.X, b.startMs, b.endMs, 'above target: ' + fmtMs(b.aboveTargetMs) + ', peak ' + fmtMs(b.peakMs)); });
    el('line', { x1: L, x2: L + PW, y1: c.Y(ns.rpoTargetMs), y2: c.Y(ns.rpoTargetMs), 'class': 'target' }, c.svg);
    el('text', { x: L + PW - 4, y: c.Y(ns.rpoTargetMs) - 4, 'class': 'target-label' }, c.svg, 'RPO target ' + fmtMs(ns.rpoTargetMs));
    el('path', { d: stepPath(pair.series, function (p) { return p.lagMaxMs; }, step, c.X, c.Y), 'class': 'lag' }, c.svg);
  }

  function watermarkChart(holder, ns, pair) {
    var step = report.settings.seriesResolutionMs, x0 = report.period.fromMs, x1 = report.period.toMs;
    var top = 0;
    pair.series.forEach(function (p) { if (p.watermarkAgeMs !== null && p.watermarkAgeMs > top) top = p.watermarkAgeMs; });
    var c = frame(holder, 'watermark-chart', x0, x1, niceCeil(Math.max(top, 1000)), 'watermark age');
    pair.gaps.forEach(function (g) { band(c.svg, 'gap gap-' + g.cause, c.X, g.startMs, g.endMs, 'no samples (' + g.cause + ')'); });
    el('path', { d: stepPath(pair.series, function (p) { return p.watermarkAgeMs === null ? null : Math.max(0, p.watermarkAgeMs); }, step, c.X, c.Y), 'class': 'wm-age' }, c.svg);
  }

  var drawn = 0;
  var holders = document.querySelectorAll('[data-chart]');
  for (var i = 0; i < holders.length; i++) {
    var holder = holders[i];
    var ns = report.namespaces[Number(holder.getAttribute('data-ns'))];
    var pair = ns && ns.pairs[Number(holder.getAttribute('data-pair'))];
    if (!pair) continue;
    if (holder.getAttribute('data-chart') === 'lag') lagChart(holder, ns, pair);
    else watermarkChart(holder, ns, pair);
    holder.setAttribute('data-rendered', 'true');
    drawn++;
  }
  document.body.setAttribute('data-charts', String(drawn));
})();
`;
