// The graph viewer in the browser (ui/graph_component.py loads this file as the component's module).
const NATURAL = 96 / 72;  // px per point: graphviz's SVG at its own size
const MIN_SCALE = 0.02, MAX_SCALE = 8;
const FOCUS_MIN = 0.7;  // the smallest first view, a share of natural size: 10-point node labels at 9 px or more
const VIEWS = (window.__qvViews = window.__qvViews || {});  // component key -> {svgKey, view}

function afterPaint() {  // resolves after the next frame is painted
  return new Promise((resolve) => requestAnimationFrame(() => {
    const ch = new MessageChannel(); ch.port1.onmessage = () => resolve(); ch.port2.postMessage(0);
  }));
}

function build(parent) {
  const root = document.createElement('div');
  root.className = 'qv-graph';
  root.setAttribute('data-testid', 'qv-graph');
  root.innerHTML = `<div class="qv-toolbar">
      <button data-act="fit" title="the whole graph in the pane">Fit</button>
      <button data-act="one" title="natural size: 10-point labels">1:1</button>
      <button data-act="in" title="zoom in">+</button><button data-act="out" title="zoom out">−</button>
      <span class="qv-zoom">100%</span>
      <input class="qv-find" placeholder="find a box (Enter: next)" title="name, target or module; client-side">
      <span class="qv-found"></span>
      <span style="flex:1"></span><span class="qv-hint">wheel: zoom · drag: pan · click a module box: expand</span>
    </div>
    <div class="qv-viewport"></div>
    <div class="qv-minimap" title="overview: click to move there"><canvas></canvas><div class="qv-mini-view"></div></div>`;
  parent.appendChild(root);
  return root;
}

class Viewer {
  constructor(root) {
    this.root = root;
    this.port = root.querySelector('.qv-viewport');
    this.mini = root.querySelector('.qv-minimap');
    this.miniView = root.querySelector('.qv-mini-view');
    this.view = null;  // {x, y, s}: top-left in graph units, px per unit
    this.last = null;
    this.found = [];
    this.foundAt = -1;
    this.bind();
  }

  load(svgText, svgKey, compKey) {
    this.port.innerHTML = '<div class="qv-stage"></div>';
    this.stage = this.port.firstChild;
    this.stage.innerHTML = svgText;
    this.svg = this.stage.querySelector('svg');
    const vb = (this.svg.getAttribute('viewBox') || '0 0 100 100').split(/[ ,]+/).map(Number);
    this.bounds = {x: vb[0], y: vb[1], w: vb[2], h: vb[3]};
    this.ring = document.createElement('div');
    this.ring.className = 'qv-ring';
    this.stage.appendChild(this.ring);
    this.drawn = null;  // the scale the SVG is rasterised at (its width/height); the rest is a CSS transform
    this.nodes = new Map();  // svg node name (box id) -> <g>
    this.svg.querySelectorAll('g.node').forEach((g) => {
      const t = g.querySelector('title'); if (t) this.nodes.set(t.textContent, g);
    });
    this.edges = new Map();  // box id -> its edges' <g>
    this.svg.querySelectorAll('g.edge').forEach((g) => {
      const t = g.querySelector('title'); if (!t) return;
      for (const end of t.textContent.split('->')) {
        if (!this.edges.has(end)) this.edges.set(end, []);
        this.edges.get(end).push(g);
      }
    });
    this.miniDrawn = false;
    this.svgKey = svgKey;
    this.compKey = compKey;
    this.found = []; this.foundAt = -1; this.ringOn = null;
    this.root.querySelector('.qv-found').textContent = '';
  }

  size() { return {w: this.port.clientWidth || 800, h: this.port.clientHeight || 600}; }

  apply() {  // the view as a CSS transform of the rasterised SVG: no repaint while panning and zooming
    const v = this.view, b = this.bounds;
    if (!this.drawn) this.commit();
    const k = v.s / this.drawn;
    this.stage.style.transform = `translate(${(b.x - v.x) * v.s}px, ${(b.y - v.y) * v.s}px) scale(${k})`;
    this.root.querySelector('.qv-zoom').textContent = `${Math.round(v.s / NATURAL * 100)}%`;
    VIEWS[this.compKey] = {svgKey: this.svgKey, view: {...v}};
    this.drawMini();
    clearTimeout(this.settle);
    if (Math.abs(k - 1) > 1e-6) this.settle = setTimeout(() => { this.commit(); this.apply(); }, 250);
  }

  commit() {  // rasterise the SVG at the current scale (once the zoom has settled): sharp text again
    const b = this.bounds, s = this.view.s;
    this.drawn = s;
    this.svg.setAttribute('width', `${b.w * s}px`);
    this.svg.setAttribute('height', `${b.h * s}px`);
    this.placeRing();
  }

  viewBox() {
    const {w, h} = this.size(), v = this.view;
    return [v.x, v.y, w / v.s, h / v.s];
  }

  drawMini() {
    const b = this.bounds, {w, h} = this.size(), v = this.view;
    const whole = w / v.s >= b.w && h / v.s >= b.h;
    this.mini.style.display = whole ? 'none' : 'block';
    if (whole) return;
    const mw = Math.min(180, 180 * b.w / b.h), mh = mw * b.h / b.w;
    const k = mw / b.w;
    Object.assign(this.mini.style, {width: `${mw}px`, height: `${mh}px`});
    if (!this.miniDrawn) { this.miniDrawn = true; setTimeout(() => this.paintMini(mw, mh), 0); }
    const left = Math.max(0, (v.x - b.x) * k), top = Math.max(0, (v.y - b.y) * k);
    Object.assign(this.miniView.style, {left: `${left}px`, top: `${top}px`,
      width: `${Math.max(4, Math.min(mw - left, w / v.s * k))}px`,
      height: `${Math.max(4, Math.min(mh - top, h / v.s * k))}px`});
  }

  paintMini(mw, mh) {  // each box as a small rectangle in its fill colour (cheap to draw, no SVG image)
    const canvas = this.mini.querySelector('canvas'), b = this.bounds, ratio = window.devicePixelRatio || 1;
    canvas.width = mw * ratio; canvas.height = mh * ratio;
    const ctx = canvas.getContext('2d'), k = mw / b.w * ratio;
    const gt = this.svg.querySelector('g.graph');  // graphviz: translate(4 H) on the drawing's group
    const m = /translate\(([-\d.]+)[ ,]([-\d.]+)\)/.exec(gt ? gt.getAttribute('transform') || '' : '');
    const [ox, oy] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (const g of this.nodes.values()) {
      const shape = g.querySelector('polygon, ellipse, path');
      if (!shape) continue;
      const r = shape.getBBox();
      ctx.fillStyle = shape.getAttribute('fill') && shape.getAttribute('fill') !== 'none' ? shape.getAttribute('fill') : '#94a3b8';
      ctx.fillRect((r.x + ox - b.x) * k, (r.y + oy - b.y) * k, Math.max(1, r.width * k), Math.max(1, r.height * k));
      ctx.strokeStyle = '#64748b'; ctx.lineWidth = 0.5;
      ctx.strokeRect((r.x + ox - b.x) * k, (r.y + oy - b.y) * k, Math.max(1, r.width * k), Math.max(1, r.height * k));
    }
  }

  timed(action, fn) {
    const t0 = performance.now();
    fn();
    this.apply();
    return afterPaint().then(() => {
      this.last = {action, ms: performance.now() - t0};
      this.root.dataset.lastAction = action;
      this.root.dataset.lastMs = this.last.ms.toFixed(1);
      return this.last.ms;
    });
  }

  clampScale(s) { return Math.min(MAX_SCALE, Math.max(MIN_SCALE, s)); }

  zoomBy(f, px, py) {
    return this.timed('zoom', () => {
      const {w, h} = this.size(), v = this.view;
      px = px ?? w / 2; py = py ?? h / 2;
      const gx = v.x + px / v.s, gy = v.y + py / v.s, s = this.clampScale(v.s * f);
      this.view = {x: gx - px / s, y: gy - py / s, s};
    });
  }

  panBy(dx, dy) {
    return this.timed('pan', () => { this.view = {...this.view, x: this.view.x - dx / this.view.s,
                                                  y: this.view.y - dy / this.view.s}; });
  }

  centreAt(gx, gy, s) {
    const {w, h} = this.size();
    s = s ?? this.view.s;
    this.view = {x: gx - w / 2 / s, y: gy - h / 2 / s, s};
  }

  fit() {
    return this.timed('fit', () => {
      const b = this.bounds, {w, h} = this.size();
      this.centreAt(b.x + b.w / 2, b.y + b.h / 2, this.clampScale(Math.min(w / b.w, h / b.h)));
    });
  }

  oneToOne() {
    return this.timed('one', () => {
      const {w, h} = this.size(), v = this.view;
      this.centreAt(v.x + w / 2 / v.s, v.y + h / 2 / v.s, NATURAL);
    });
  }

  initial() {  // fitted to the patterns and delegates (what the stage is about), else as below
    const b = this.bounds, {w} = this.size(), s = NATURAL;
    this.view = {x: b.x + b.w / 2 - w / 2 / s, y: b.y, s};
    this.apply();
    if (this.fitFocus()) return;
    // natural size, the top of the graph, centred across on the graph's input (or its middle)
    const input = b.w * s > w && this.svg.querySelector('g.node.qv-input');
    if (input) { const r = this.graphBox(input); this.view.x = r.x + r.w / 2 - w / 2 / s; }
  }

  focusBoxes() {  // the pattern and delegate clusters' boxes in graph units, in reading order (top to bottom)
    return [...this.svg.querySelectorAll('g.cluster[id^="qv_pattern_"], g.cluster[id^="qv_delegate_"]')]
      .map((g) => this.graphBox(g)).filter((r) => r.w > 0 && r.h > 0).sort((a, b) => a.y - b.y || a.x - b.x);
  }

  fitFocus() {  // the patterns (delegates) whole, at most natural size: all of them when they fit at FOCUS_MIN or
    // more, else the first ones in reading order that do (a tall chain of patterns: its top, none cut through)
    const boxes = this.focusBoxes();
    if (!boxes.length) return false;
    const {w, h} = this.size(), pad = 24;
    const fit = (u) => Math.min(w / (u.w + 2 * pad), h / (u.h + 2 * pad));
    let u = boxes[0];
    for (const r of boxes.slice(1)) {
      const x = Math.min(u.x, r.x), y = Math.min(u.y, r.y);
      const next = {x, y, w: Math.max(u.x + u.w, r.x + r.w) - x, h: Math.max(u.y + u.h, r.y + r.h) - y};
      if (fit(next) < FOCUS_MIN * NATURAL) break;
      u = next;
    }
    this.centreAt(u.x + u.w / 2, u.y + u.h / 2, this.clampScale(Math.min(NATURAL, fit(u))));
    this.apply();
    return true;
  }

  graphBox(el) {  // an element's box in graph units (from the screen: transform included)
    const r = el.getBoundingClientRect(), p = this.svg.getBoundingClientRect(), b = this.bounds;
    const k = p.width / b.w;  // screen px per graph unit right now
    return {x: b.x + (r.left - p.left) / k, y: b.y + (r.top - p.top) / k, w: r.width / k, h: r.height / k};
  }

  element(id) {
    return this.svg.querySelector(`[id="${CSS.escape('qv_' + id)}"]`) || this.nodes.get(id) || null;
  }

  centreOn(id) {
    const el = this.element(id);
    if (!el) return false;
    const b = this.graphBox(el), s = Math.max(this.view.s, NATURAL * 0.75), {h} = this.size();
    this.centreAt(b.x + b.w / 2, b.y + b.h / 2, s);
    if (b.h * s > h - 80) this.view.y = b.y - 40 / s;  // taller than the pane (an opened module): its top
    return true;
  }

  highlight(id) {  // a ring over the box (no change to the SVG, so no repaint of it), centred
    return this.timed('highlight', () => {
      this.ringOn = this.element(id) ? id : null;
      this.placeRing();
      if (this.ringOn) this.centreOn(id);
    });
  }

  placeRing() {
    if (!this.ring) return;
    const el = this.ringOn && this.element(this.ringOn);
    this.ring.style.display = el ? 'block' : 'none';
    this.root.dataset.highlighted = el ? this.ringOn : '';
    if (!el) return;
    const r = this.graphBox(el), b = this.bounds, s = this.drawn, pad = 6;
    Object.assign(this.ring.style, {left: `${(r.x - b.x) * s - pad}px`, top: `${(r.y - b.y) * s - pad}px`,
      width: `${r.w * s + 2 * pad}px`, height: `${r.h * s + 2 * pad}px`});
  }

  mark(cls, ids) {
    this.svg.querySelectorAll('.' + cls).forEach((g) => g.classList.remove(cls));
    for (const id of ids || []) { const el = this.element(id); if (el) el.classList.add(cls); }
  }

  hover(g, on) {
    const t = g.querySelector('title');
    for (const e of (t && this.edges.get(t.textContent)) || []) e.classList.toggle('qv-hover', on);
  }

  find(text, next) {
    const q = text.trim().toLowerCase();
    if (!q) { this.found = []; this.root.querySelector('.qv-found').textContent = ''; return; }
    if (!next || !this.found.length) {
      this.found = [...this.nodes.entries()].filter(([id, g]) =>
        (id + ' ' + g.textContent).toLowerCase().includes(q)).map(([id]) => id);
      this.foundAt = -1;
    }
    const label = this.root.querySelector('.qv-found');
    if (!this.found.length) { label.textContent = 'no box'; return; }
    this.foundAt = (this.foundAt + 1) % this.found.length;
    label.textContent = `${this.foundAt + 1} of ${this.found.length}`;
    this.highlight(this.found[this.foundAt]);
  }

  bind() {
    const port = this.port;
    port.addEventListener('wheel', (e) => {
      e.preventDefault();
      const r = port.getBoundingClientRect();
      this.zoomBy(Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)), e.clientX - r.left, e.clientY - r.top);
    }, {passive: false});
    port.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      this.drag = {x: e.clientX, y: e.clientY, moved: false, id: e.pointerId};
    });
    port.addEventListener('pointermove', (e) => {
      const d = this.drag;
      if (!d) return;
      const dx = e.clientX - d.x, dy = e.clientY - d.y;
      if (!d.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
      if (!d.moved) { d.moved = true; port.classList.add('qv-dragging'); port.setPointerCapture(d.id); }
      d.x = e.clientX; d.y = e.clientY;
      this.panBy(dx, dy);
    });
    const end = () => {
      if (this.drag) this.dragged = this.drag.moved;
      this.drag = null; port.classList.remove('qv-dragging');
    };
    port.addEventListener('pointerup', end);
    port.addEventListener('pointercancel', end);
    port.addEventListener('click', (e) => {
      if (this.dragged) { this.dragged = false; return; }
      const g = e.target.closest('g.node');
      if (g && g.id.startsWith('qv_')) { e.preventDefault(); this.trigger(g.id.slice(3)); return; }
      const title = e.target.closest('text');
      const open = title && title.parentElement.closest('g.qv-open');
      if (open && open.id.startsWith('qv_')) this.trigger(open.id.slice(3));
    });
    port.addEventListener('pointerover', (e) => { const g = e.target.closest('g.node'); if (g) this.hover(g, true); });
    port.addEventListener('pointerout', (e) => { const g = e.target.closest('g.node'); if (g) this.hover(g, false); });
    this.root.querySelector('.qv-toolbar').addEventListener('click', (e) => {
      const act = e.target.dataset && e.target.dataset.act;
      if (act === 'fit') this.fit();
      else if (act === 'one') this.oneToOne();
      else if (act === 'in') this.zoomBy(1.25);
      else if (act === 'out') this.zoomBy(0.8);
    });
    this.root.querySelector('.qv-find').addEventListener('keydown', (e) => {
      if (e.key === 'Enter') { e.preventDefault(); this.find(e.target.value, true); }
    });
    this.root.querySelector('.qv-find').addEventListener('input', (e) => this.find(e.target.value, false));
    this.mini.addEventListener('click', (e) => {
      const r = this.mini.getBoundingClientRect(), b = this.bounds;
      const k = b.w / r.width;
      this.timed('minimap', () => this.centreAt(b.x + (e.clientX - r.left) * k, b.y + (e.clientY - r.top) * k));
    });
  }

  api() {
    return {
      zoomBy: (f, x, y) => this.zoomBy(f, x, y), panBy: (dx, dy) => this.panBy(dx, dy), fit: () => this.fit(),
      oneToOne: () => this.oneToOne(), highlight: (id) => this.highlight(id), centreOn: (id) => this.centreOn(id),
      viewBox: () => this.viewBox(),  // the part of the graph in the pane: [x, y, w, h] in graph units
      scale: () => this.view.s / NATURAL,
    };
  }
}

export default function(component) {
  const { data, setTriggerValue, parentElement } = component;
  let root = parentElement.querySelector('.qv-graph');
  if (!root) root = build(parentElement);
  root.dataset.run = String(data.run);
  const viewer = root._viewer || (root._viewer = new Viewer(root));
  viewer.trigger = (id) => setTriggerValue('clicked', id);
  viewer.port.style.height = `${data.height}px`;
  if (root.dataset.key !== data.key) {
    const known = VIEWS[data.comp];
    const had = viewer.view;
    viewer.load(data.svg, data.key, data.comp);
    root.dataset.key = data.key;
    if (known && known.svgKey === data.key) viewer.view = {...known.view};  // a remount: same drawing
    else if (!had && !(known && data.focus)) viewer.initial();
    else if (!had) viewer.view = {...known.view};
    viewer.apply();
    viewer.lastFocus = null;
  }
  viewer.mark('qv-selected', data.selected);
  viewer.mark('qv-linked', data.linked);
  if (data.focus && (data.reveal || data.focus !== viewer.lastFocus)) {
    viewer.lastFocus = data.focus;
    if (data.reveal) {  // a node found by name: the pane scrolled into the window, the node centred and ringed
      root.scrollIntoView({block: 'nearest'});
      viewer.highlight(data.focus);
    }
    else if (viewer.centreOn(data.focus)) viewer.apply();
  }
  const api = viewer.api();
  Object.defineProperty(api, 'last', {get: () => viewer.last});
  root.qv = api;
}
