"""Static parts of the HTML report: the stylesheet and the scripts (inline, no network).

``ERROR_CAPTURE`` runs first, in ``<head>``, so that any script error of the page is recorded.
``SCRIPT`` drives the gallery and, only when the page is opened with ``?selftest`` in its
address, checks itself after loading (every ``<img>`` decoded, the gallery switching to each
image and back with the buttons, no script error) and writes the outcome as JSON into
``<pre id="selftest-result">`` and the page title, where a headless browser can read it.
"""

CSS = """
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #ffffff; --soft: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 20px 32px 12px; border-bottom: 1px solid var(--line); background: var(--soft); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .meta { color: var(--muted); font-size: 13px; }
nav { padding: 8px 32px; border-bottom: 1px solid var(--line); font-size: 13px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
main { padding: 8px 32px 40px; max-width: 1400px; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 16px 0 6px; }
h4 { font-size: 13px; margin: 12px 0 6px; color: var(--muted); }
p.note, span.note { color: var(--muted); font-size: 13px; }
.banner { margin: 12px 0; padding: 8px 12px; border: 1px solid #d4a72c; background: #fff8c5; border-radius: 6px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: var(--soft); }
td:first-child, th:first-child { text-align: left; }
tr.reference td { color: var(--muted); font-style: italic; }
td.best { font-weight: 700; }
td.na { color: var(--muted); text-align: center; }
thead tr:first-child th[colspan] { font-weight: 600; font-size: 12px; color: var(--muted); text-align: center; }
.ci { color: var(--muted); font-size: 12px; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.figures figure { margin: 0; flex: 0 1 560px; }
.figures img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
.figures figcaption { color: var(--muted); font-size: 12px; max-width: 560px; }
details { margin: 8px 0; }
summary { cursor: pointer; color: var(--accent); }
.gallery-controls { display: flex; gap: 8px; align-items: center; margin: 8px 0 12px; }
.gallery-controls select { font-size: 14px; padding: 3px 6px; min-width: 260px; }
.gallery-controls button { font-size: 14px; padding: 3px 10px; cursor: pointer; }
.gallery-item { display: none; }
.gallery-item.active { display: block; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; }
figure.tile { margin: 0; width: 200px; text-align: center; }
figure.tile img { width: 192px; height: auto; image-rendering: auto; border: 1px solid var(--line); border-radius: 3px; }
figure.tile figcaption { font-size: 12px; line-height: 1.35; color: var(--fg); }
figure.tile.small { width: 104px; }
figure.tile.small img { width: 96px; }
figure.tile.small figcaption { font-size: 10px; color: var(--muted); word-break: break-all; }
span.metric { white-space: nowrap; color: var(--muted); }
pre { background: var(--soft); padding: 8px; font-size: 12px; overflow-x: auto; }
footer { color: var(--muted); font-size: 12px; padding: 16px 32px; border-top: 1px solid var(--line); }
"""

ERROR_CAPTURE = """
window.__mlfemErrors = [];
window.addEventListener('error', function (event) {
  window.__mlfemErrors.push(String(event.message || event.type) + (event.filename ? ' @' + event.filename + ':' + event.lineno : ''));
}, true);
"""

SCRIPT = """
(function () {
  var select = document.getElementById('gallery-select');
  function show(index) {
    var items = document.querySelectorAll('.gallery-item');
    for (var i = 0; i < items.length; i++) {
      items[i].classList.toggle('active', items[i].getAttribute('data-index') === String(index));
    }
    if (select) { select.value = String(index); }
  }
  function step(delta) {
    var n = select.options.length;
    show((Number(select.value) + delta + n) % n);
  }
  if (select) {
    select.addEventListener('change', function () { show(select.value); });
    document.getElementById('gallery-prev').addEventListener('click', function () { step(-1); });
    document.getElementById('gallery-next').addEventListener('click', function () { step(1); });
    document.addEventListener('keydown', function (event) {
      if (event.target && event.target.tagName === 'SELECT') { return; }
      if (event.key === 'ArrowRight') { step(1); }
      if (event.key === 'ArrowLeft') { step(-1); }
    });
  }
  window.mlfemGallery = { show: show };

  function selftest() {
    var result = { images: document.images.length, broken: [], gallery: null, errors: [] };
    for (var i = 0; i < document.images.length; i++) {
      var img = document.images[i];
      if (!img.complete || img.naturalWidth === 0) { result.broken.push(img.getAttribute('alt') || String(i)); }
    }
    var switched = true;
    if (select) {
      var n = select.options.length;
      for (var k = 0; k < n; k++) {
        select.value = String(k);
        select.dispatchEvent(new Event('change'));
        var active = document.querySelectorAll('.gallery-item.active');
        if (active.length !== 1 || active[0].getAttribute('data-index') !== String(k) || active[0].offsetHeight === 0) {
          switched = false;
        }
      }
      show(0);
      document.getElementById('gallery-next').click();
      var afterNext = select.value;
      document.getElementById('gallery-prev').click();
      result.gallery = { items: n, switched: switched, next: afterNext, back: select.value };
      if (n > 1 && afterNext !== '1') { switched = false; }
      if (select.value !== '0') { switched = false; }
    }
    result.errors = (window.__mlfemErrors || []).slice();
    result.ok = result.broken.length === 0 && switched && result.errors.length === 0;
    var pre = document.createElement('pre');
    pre.id = 'selftest-result';
    pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
    document.title = (result.ok ? 'SELFTEST PASS ' : 'SELFTEST FAIL ') + document.title;
  }
  if (/[?&]selftest(=|&|$)/.test(window.location.search)) {
    if (document.readyState === 'complete') { selftest(); } else { window.addEventListener('load', selftest); }
  }
})();
"""
