// The report's script: tables, the UMAP scatter, gene colouring and the volcano plots.
// Every name from the data is shown with textContent (never parsed as markup).
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var tip = document.getElementById('tooltip');

  function bytes(s) {
    var bin = atob(s), n = bin.length, u = new Uint8Array(n);
    for (var i = 0; i < n; i++) u[i] = bin.charCodeAt(i);
    return u;
  }
  function f32(s) { var b = bytes(s); return new Float32Array(b.buffer, 0, b.length >> 2); }
  function u32(s) { var b = bytes(s); return new Uint32Array(b.buffer, 0, b.length >> 2); }
  function codes(c) { var b = bytes(c.data); return c.bits === 16 ? new Uint16Array(b.buffer, 0, b.length >> 1) : b; }
  function rgb(h) { return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)]; }
  function fmt(v) {
    if (v === null || v === undefined) return 'NA';
    if (typeof v !== 'number') return String(v);
    if (Number.isInteger(v)) return String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }
  function showTip(ev, text) {
    tip.textContent = text;
    tip.hidden = false;
    tip.style.left = (ev.clientX + 14) + 'px';
    tip.style.top = (ev.clientY + 10) + 'px';
  }
  function hideTip() { tip.hidden = true; }

  // ---- tables: sortable (click a header), filterable (text box), first 200 matches shown
  var LIMIT = 200;
  function initTable(el) {
    var t = D.tables[el.getAttribute('data-table')];
    if (!t) return;
    var rows = t.rows.slice(), sortCol = -1, asc = true;
    var bar = document.createElement('div'); bar.className = 'bar';
    var filter = document.createElement('input');
    filter.type = 'search'; filter.placeholder = 'filter rows'; filter.className = 'filter';
    var info = document.createElement('span'); info.className = 'info';
    bar.appendChild(filter); bar.appendChild(info);
    var scroll = document.createElement('div'); scroll.className = 'scroll';
    var table = document.createElement('table');
    var thead = document.createElement('thead'), htr = document.createElement('tr');
    t.columns.forEach(function (c, j) {
      var th = document.createElement('th');
      th.textContent = c.name;
      if (c.num) th.className = 'num';
      th.addEventListener('click', function () {
        asc = sortCol === j ? !asc : true;
        sortCol = j;
        rows.sort(function (a, b) {
          var x = a[j], y = b[j];
          if (x === null) return 1;
          if (y === null) return -1;
          var r = c.num ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
          return asc ? r : -r;
        });
        render();
      });
      htr.appendChild(th);
    });
    thead.appendChild(htr);
    var tbody = document.createElement('tbody');
    table.appendChild(thead); table.appendChild(tbody);
    scroll.appendChild(table);
    el.appendChild(bar); el.appendChild(scroll);
    function render() {
      var q = filter.value.trim().toLowerCase();
      var match = q ? rows.filter(function (r) {
        return r.some(function (v) { return v !== null && String(v).toLowerCase().indexOf(q) >= 0; });
      }) : rows;
      var frag = document.createDocumentFragment();
      for (var i = 0; i < Math.min(LIMIT, match.length); i++) {
        var tr = document.createElement('tr');
        for (var j = 0; j < t.columns.length; j++) {
          var td = document.createElement('td');
          td.textContent = t.columns[j].num ? fmt(match[i][j]) : (match[i][j] === null ? '' : String(match[i][j]));
          if (t.columns[j].num) td.className = 'num';
          tr.appendChild(td);
        }
        frag.appendChild(tr);
      }
      tbody.replaceChildren(frag);
      info.textContent = (match.length > LIMIT ? 'first ' + LIMIT + ' of ' : '') + match.length +
        (q ? ' matching' : '') + ' row' + (match.length === 1 ? '' : 's');
    }
    filter.addEventListener('input', render);
    render();
  }
  Array.prototype.forEach.call(document.querySelectorAll('.tbl[data-table]'), initTable);

  // ---- colour scale (viridis stops)
  var VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
  function viridis(t) {
    t = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
    var i = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - i, a = VIRIDIS[i], b = VIRIDIS[i + 1];
    return [Math.round(a[0] + f * (b[0] - a[0])), Math.round(a[1] + f * (b[1] - a[1])), Math.round(a[2] + f * (b[2] - a[2]))];
  }
  var GREY = [211, 211, 211];

  // ---- UMAP scatter
  var C = D.cells, canvas = document.getElementById('umap-canvas');
  if (C && canvas) initScatter();

  function initScatter() {
    var ctx = canvas.getContext('2d');
    var W = canvas.width, H = canvas.height, n = C.shown;
    var x = f32(C.x), y = f32(C.y);
    var cat = { cluster: codes(C.cluster), sample: codes(C.sample), condition: codes(C.condition) };
    var pal = C.palette.map(rgb);
    var dbl = C.doublet ? bytes(C.doublet.data) : null;
    var minx = Infinity, maxx = -Infinity, miny = Infinity, maxy = -Infinity;
    for (var i = 0; i < n; i++) {
      if (x[i] < minx) minx = x[i]; if (x[i] > maxx) maxx = x[i];
      if (y[i] < miny) miny = y[i]; if (y[i] > maxy) maxy = y[i];
    }
    var view = {};
    function reset() {
      view.cx = (minx + maxx) / 2; view.cy = (miny + maxy) / 2;
      view.s = 0.92 * Math.min(W / Math.max(maxx - minx, 1e-9), H / Math.max(maxy - miny, 1e-9));
    }
    reset();
    var half = n > 20000 ? 1 : 2;
    var col = new Uint8Array(3 * n), order = new Uint32Array(n);
    var mode = 'cluster', gene = null, geneName = '', values = null;
    var legend = document.getElementById('legend');

    function colourise() {
      var k, c;
      if (mode === 'gene' && values) {
        var max = 0;
        for (k = 0; k < n; k++) if (values[k] > max) max = values[k];
        var idx = Array.from({ length: n }, function (_, j) { return j; });
        idx.sort(function (a, b) { return values[a] - values[b]; });
        for (k = 0; k < n; k++) {
          order[k] = idx[k];
          c = values[k] > 0 ? viridis(values[k] / (max || 1)) : GREY;
          col[3 * k] = c[0]; col[3 * k + 1] = c[1]; col[3 * k + 2] = c[2];
        }
        legendGradient(geneName, 0, max);
        return;
      }
      for (k = 0; k < n; k++) order[k] = k;
      if (mode === 'doublet' && dbl) {
        for (k = 0; k < n; k++) {
          c = dbl[k] === 255 ? GREY : viridis(dbl[k] / 254);
          col[3 * k] = c[0]; col[3 * k + 1] = c[1]; col[3 * k + 2] = c[2];
        }
        legendGradient('doublet score', 0, C.doublet.max);
        return;
      }
      var codesOf = cat[mode] || cat.cluster;
      for (k = 0; k < n; k++) {
        c = pal[codesOf[k] % pal.length];
        col[3 * k] = c[0]; col[3 * k + 1] = c[1]; col[3 * k + 2] = c[2];
      }
      legendCategories(mode, codesOf);
    }
    function legendCategories(key, codesOf) {
      var names = C.names[key] || [], counts = new Array(names.length).fill(0);
      for (var k = 0; k < n; k++) counts[codesOf[k]]++;
      legend.replaceChildren();
      names.forEach(function (name, j) {
        var row = document.createElement('div'), sw = document.createElement('span');
        sw.className = 'sw'; sw.style.background = C.palette[j % C.palette.length];
        row.appendChild(sw);
        row.appendChild(document.createTextNode(name + ' (' + counts[j] + ')'));
        legend.appendChild(row);
      });
    }
    function legendGradient(label, lo, hi) {
      legend.replaceChildren();
      var t = document.createElement('div'); t.textContent = label;
      var g = document.createElement('div'); g.className = 'grad';
      var r = document.createElement('div'); r.textContent = fmt(lo) + ' … ' + fmt(hi);
      legend.appendChild(t); legend.appendChild(g); legend.appendChild(r);
    }
    function draw() {
      var img = ctx.createImageData(W, H), p = img.data;
      p.fill(255);
      for (var k = 0; k < n; k++) {
        var i = order[k];
        var px = Math.round((x[i] - view.cx) * view.s + W / 2), py = Math.round(H / 2 - (y[i] - view.cy) * view.s);
        if (px < -half || py < -half || px >= W + half || py >= H + half) continue;
        var r = col[3 * i], g = col[3 * i + 1], b = col[3 * i + 2];
        for (var dy = -half; dy <= half; dy++) {
          var yy = py + dy;
          if (yy < 0 || yy >= H) continue;
          for (var dx = -half; dx <= half; dx++) {
            var xx = px + dx;
            if (xx < 0 || xx >= W) continue;
            var o = 4 * (yy * W + xx);
            p[o] = r; p[o + 1] = g; p[o + 2] = b;
          }
        }
      }
      ctx.putImageData(img, 0, 0);
    }
    var pending = false;
    function redraw() {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; draw(); });
    }
    colourise();
    draw();
    performance.mark('umap-drawn');
    document.body.setAttribute('data-umap', 'drawn');

    // Hover: a grid over the data bounds, nearest point within 6 pixels.
    var G = 128, gx = G / Math.max(maxx - minx, 1e-9), gy = G / Math.max(maxy - miny, 1e-9);
    var start = new Uint32Array(G * G + 1), items = new Uint32Array(n);
    function cellOf(i) {
      var a = Math.min(G - 1, Math.floor((x[i] - minx) * gx)), b = Math.min(G - 1, Math.floor((y[i] - miny) * gy));
      return b * G + a;
    }
    for (i = 0; i < n; i++) start[cellOf(i) + 1]++;
    for (i = 0; i < G * G; i++) start[i + 1] += start[i];
    var fill = start.slice(0, G * G);
    for (i = 0; i < n; i++) items[fill[cellOf(i)]++] = i;
    function nearest(mx, my) {
      var dxv = (mx - W / 2) / view.s + view.cx, dyv = (H / 2 - my) / view.s + view.cy, rad = 6 / view.s;
      var a0 = Math.max(0, Math.floor((dxv - rad - minx) * gx)), a1 = Math.min(G - 1, Math.floor((dxv + rad - minx) * gx));
      var b0 = Math.max(0, Math.floor((dyv - rad - miny) * gy)), b1 = Math.min(G - 1, Math.floor((dyv + rad - miny) * gy));
      var best = -1, bd = rad * rad;
      for (var b = b0; b <= b1; b++) for (var a = a0; a <= a1; a++) {
        var c = b * G + a;
        for (var t = start[c]; t < start[c + 1]; t++) {
          var j = items[t], ex = x[j] - dxv, ey = y[j] - dyv, d2 = ex * ex + ey * ey;
          if (d2 <= bd) { bd = d2; best = j; }
        }
      }
      return best;
    }
    var drag = null;
    canvas.addEventListener('mousedown', function (ev) { drag = { x: ev.clientX, y: ev.clientY }; canvas.style.cursor = 'grabbing'; });
    window.addEventListener('mouseup', function () { drag = null; canvas.style.cursor = 'grab'; });
    canvas.addEventListener('mousemove', function (ev) {
      var rect = canvas.getBoundingClientRect();
      var mx = (ev.clientX - rect.left) * W / rect.width, my = (ev.clientY - rect.top) * H / rect.height;
      if (drag) {
        view.cx -= (ev.clientX - drag.x) * W / rect.width / view.s;
        view.cy += (ev.clientY - drag.y) * H / rect.height / view.s;
        drag = { x: ev.clientX, y: ev.clientY };
        hideTip();
        redraw();
        return;
      }
      var j = nearest(mx, my);
      if (j < 0) { hideTip(); return; }
      var text = 'cluster ' + C.names.cluster[cat.cluster[j]] + '\nsample ' + C.names.sample[cat.sample[j]] +
        '\ncondition ' + C.names.condition[cat.condition[j]];
      if (mode === 'gene' && values) text += '\n' + geneName + ' ' + fmt(values[j]);
      if (mode === 'doublet' && dbl && dbl[j] !== 255) text += '\ndoublet score ' + fmt(dbl[j] / 254 * C.doublet.max);
      showTip(ev, text);
    });
    canvas.addEventListener('mouseleave', hideTip);
    canvas.addEventListener('wheel', function (ev) {
      ev.preventDefault();
      var rect = canvas.getBoundingClientRect();
      var mx = (ev.clientX - rect.left) * W / rect.width, my = (ev.clientY - rect.top) * H / rect.height;
      var dxv = (mx - W / 2) / view.s + view.cx, dyv = (H / 2 - my) / view.s + view.cy;
      view.s *= Math.exp(-ev.deltaY * 0.0015);
      view.cx = dxv - (mx - W / 2) / view.s; view.cy = dyv - (H / 2 - my) / view.s;
      redraw();
    }, { passive: false });
    document.getElementById('reset-view').addEventListener('click', function () { reset(); redraw(); });

    var select = document.getElementById('colour-by'), input = document.getElementById('gene-search');
    var status = document.getElementById('gene-status');
    select.addEventListener('change', function () {
      if (select.value === 'gene' && !values) { status.textContent = 'type a gene name'; input.focus(); return; }
      mode = select.value; colourise(); draw();
    });

    // Expression: a gzip stream of per-gene records (see src/html_report/pack.rs).
    var E = D.expression, raw = null, geneIndex = new Map(), lower = new Map();
    function varint(st) {
      var v = 0, shift = 0, b;
      do { b = raw[st.at++]; v += (b & 127) * Math.pow(2, shift); shift += 7; } while (b >= 128);
      return v;
    }
    function geneValues(k) {
      var st = { at: E.offsets[k] }, count = varint(st), pos = new Uint32Array(count), prev = -1;
      for (var t = 0; t < count; t++) { prev += varint(st); pos[t] = prev; }
      var out = new Float32Array(n), scale = E.max[k] / 255;
      for (t = 0; t < count; t++) out[pos[t]] = raw[st.at + t] * scale;
      return out;
    }
    function chooseGene() {
      var q = input.value.trim(), k = geneIndex.has(q) ? geneIndex.get(q) : lower.get(q.toLowerCase());
      if (k === undefined) { status.textContent = q ? 'not in the search list: ' + q : ''; return; }
      geneName = E.genes[k]; values = geneValues(k); mode = 'gene'; select.value = 'gene';
      status.textContent = 'colour: ' + geneName;
      colourise(); draw();
      document.body.setAttribute('data-gene', geneName);
    }
    input.addEventListener('change', chooseGene);
    input.addEventListener('input', function () { if (geneIndex.has(input.value.trim())) chooseGene(); });
    if (E && E.genes.length) {
      var packed = bytes(E.gzip);
      var stream = new Blob([packed]).stream().pipeThrough(new DecompressionStream('gzip'));
      new Response(stream).arrayBuffer().then(function (buf) {
        raw = new Uint8Array(buf);
        var list = document.getElementById('gene-list'), frag = document.createDocumentFragment();
        E.genes.forEach(function (g, k) {
          geneIndex.set(g, k);
          if (!lower.has(g.toLowerCase())) lower.set(g.toLowerCase(), k);
          var o = document.createElement('option'); o.value = g; frag.appendChild(o);
        });
        list.appendChild(frag);
        input.disabled = false;
        document.body.setAttribute('data-expression', 'ready');
      }, function (e) { status.textContent = 'gene expression could not be read: ' + e; });
    }
  }

  // ---- volcano per cluster
  var V = D.volcano, vc = document.getElementById('volcano');
  if (V && vc) {
    var vsel = document.getElementById('volcano-cluster'), vctx = vc.getContext('2d');
    var keys = Object.keys(V.clusters).sort(function (a, b) { return a - b; });
    keys.forEach(function (k) { var o = document.createElement('option'); o.value = k; o.textContent = 'cluster ' + k; vsel.appendChild(o); });
    var cur = null;
    function drawVolcano() {
      var v = V.clusters[vsel.value];
      if (!v) return;
      cur = { lfc: f32(v.lfc), nlp: f32(v.nlp), sig: bytes(v.sig), gene: u32(v.gene) };
      var W = vc.width, H = vc.height, L = 50, B = 36, m = cur.lfc.length, xm = 1, ym = 1, i;
      for (i = 0; i < m; i++) { xm = Math.max(xm, Math.abs(cur.lfc[i])); ym = Math.max(ym, cur.nlp[i]); }
      cur.px = function (i) { return L + (cur.lfc[i] + xm) / (2 * xm) * (W - L - 10); };
      cur.py = function (i) { return H - B - cur.nlp[i] / ym * (H - B - 10); };
      vctx.fillStyle = '#fff'; vctx.fillRect(0, 0, W, H);
      vctx.strokeStyle = '#999'; vctx.beginPath(); vctx.moveTo(L, H - B); vctx.lineTo(W - 10, H - B);
      vctx.moveTo(L, 10); vctx.lineTo(L, H - B); vctx.stroke();
      vctx.fillStyle = '#333'; vctx.font = '11px sans-serif';
      vctx.fillText('log2 FC ' + V.numerator + ' / ' + V.denominator, L + 4, H - 8);
      vctx.fillText(fmt(-xm), L, H - B + 14); vctx.fillText(fmt(xm), W - 40, H - B + 14);
      vctx.save(); vctx.translate(14, H / 2); vctx.rotate(-Math.PI / 2); vctx.fillText('-log10 p', 0, 0); vctx.restore();
      vctx.fillText(fmt(ym), L - 40, 16);
      for (var pass = 0; pass < 2; pass++) for (i = 0; i < m; i++) {
        if (cur.sig[i] !== pass) continue;
        vctx.fillStyle = cur.sig[i] ? '#d62728' : '#aaa';
        vctx.fillRect(cur.px(i) - 1.5, cur.py(i) - 1.5, 3, 3);
      }
    }
    vsel.addEventListener('change', drawVolcano);
    vc.addEventListener('mousemove', function (ev) {
      if (!cur) return;
      var rect = vc.getBoundingClientRect(), mx = (ev.clientX - rect.left) * vc.width / rect.width,
        my = (ev.clientY - rect.top) * vc.height / rect.height, best = -1, bd = 36;
      for (var i = 0; i < cur.lfc.length; i++) {
        var dx = cur.px(i) - mx, dy = cur.py(i) - my, d2 = dx * dx + dy * dy;
        if (d2 < bd) { bd = d2; best = i; }
      }
      if (best < 0) { hideTip(); return; }
      showTip(ev, V.genes[cur.gene[best]] + '\nlog2 FC ' + fmt(cur.lfc[best]) + '\np ' + fmt(Math.pow(10, -cur.nlp[best])));
    });
    vc.addEventListener('mouseleave', hideTip);
    drawVolcano();
  }
  document.body.setAttribute('data-ready', '1');
})();
