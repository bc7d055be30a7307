/* trackflow.js: first-party tracker for the trackflow collector (Segment tracking API). No dependencies.
 * <script src="https://COLLECTOR/tracker.js" data-write-key="KEY"></script>
 * trackflow.page(name?, props?)  .track(event, props?)  .identify(userId, traits?)  .flush()  .reset()
 */
(function (w, d) {
  'use strict';
  var VERSION = '1.0.0', P = 'trackflow:', prior = w.trackflow;
  if (prior && prior.loaded) return;

  function store(s) {
    return {
      get: function (k) { try { return JSON.parse(s.getItem(P + k)); } catch (e) { return null; } },
      set: function (k, v) { try { s.setItem(P + k, JSON.stringify(v)); } catch (e) { /* full or off */ } },
      del: function (k) { try { s.removeItem(P + k); } catch (e) { /* off */ } }
    };
  }
  var local = store(w.localStorage), session = store(w.sessionStorage);

  function uuid() {
    var c = w.crypto, b = new Uint8Array(16), h = [], i;
    if (c && c.randomUUID) return c.randomUUID();
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (i = 0; i < 16; i++) b[i] = Math.random() * 256;
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    for (i = 0; i < 16; i++) h.push((b[i] + 256).toString(16).slice(1) + ([3, 5, 7, 9].indexOf(i) >= 0 ? '-' : ''));
    return h.join('');
  }
  function now() { return new Date().toISOString(); }
  function size(s) { return new Blob([s]).size; }
  function warn(m) { if (w.console) console.warn('trackflow: ' + m); }
  function assign(a, b) { for (var k in b) if (Object.prototype.hasOwnProperty.call(b, k)) a[k] = b[k]; return a; }

  var me = d.currentScript, data = (me && me.dataset) || {};
  var cfg = {
    writeKey: data.writeKey,
    host: data.host || (me && me.src ? new URL(me.src, location.href).origin : location.origin),
    flushInterval: +data.flushInterval || 2000, // ms a batch may wait
    maxBatch: 50, maxQueue: 1000, retryBase: 1000, retryMax: 60000
  };

  var anonymousId = local.get('anonymousId') || uuid(), userId = local.get('userId');
  local.set('anonymousId', anonymousId);

  // the offline queue lives in localStorage under this tab's id (sessionStorage survives a reload);
  // queues of tabs closed long ago are adopted, so nothing waits forever
  var tab = session.get('tab') || uuid(), qkey = 'q:' + tab, queue = (local.get(qkey) || {}).q || [];
  session.set('tab', tab);
  try {
    for (var i = w.localStorage.length - 1; i >= 0; i--) {
      var k = w.localStorage.key(i).slice(P.length), o = local.get(k);
      if (w.localStorage.key(i).indexOf(P + 'q:') === 0 && k !== qkey && (!o || Date.now() - o.t > 60000)) {
        queue = queue.concat((o && o.q) || []); local.del(k);
      }
    }
  } catch (e) { /* storage off */ }

  var sending = null, inflight = null, timer = null, attempt = 0;
  function save() {
    var all = sending ? sending.concat(queue) : queue; // in-flight events stay until acknowledged
    if (all.length) local.set(qkey, { t: Date.now(), q: all }); else local.del(qkey);
  }
  function schedule(ms) {
    if (!timer) timer = setTimeout(function () { timer = null; flush(); }, ms);
  }
  function body(events) {
    return JSON.stringify({ batch: events, sentAt: now(), writeKey: cfg.writeKey });
  }
  function take(limitBytes) { // how many queued events fit one request
    var n = 0, bytes = 100;
    while (n < queue.length && n < cfg.maxBatch && bytes + size(JSON.stringify(queue[n])) < limitBytes) {
      bytes += size(JSON.stringify(queue[n])) + 1; n++;
    }
    return Math.max(n, Math.min(1, queue.length));
  }

  function flush() {
    if (inflight) return inflight;
    if (!queue.length || !cfg.writeKey) return Promise.resolve();
    if (timer) { clearTimeout(timer); timer = null; }
    sending = queue.splice(0, take(450000));
    save();
    inflight = fetch(cfg.host + '/v1/batch', {
      method: 'POST', body: body(sending), credentials: 'omit',
      headers: { 'Content-Type': 'text/plain' } // a simple request: no CORS preflight
    }).then(function (r) {
      if (r.ok || (r.status < 500 && r.status !== 408 && r.status !== 429)) {
        if (!r.ok) warn('collector refused ' + sending.length + ' event(s): HTTP ' + r.status);
        attempt = 0; sending = null; save();
      } else retry(+r.headers.get('Retry-After'));
    }, function () { retry(0); }).then(function () {
      inflight = null;
      if (queue.length && !attempt) schedule(queue.length >= cfg.maxBatch ? 0 : cfg.flushInterval);
    });
    return inflight;
  }
  // back off, keeping the events queued: never before Retry-After (503, 429), plus up to a fifth more
  // so the tabs a rate limit refused together do not all return at once; else exponential, jittered
  function retry(after) {
    queue = sending.concat(queue); sending = null; save(); attempt++;
    var ms = Math.min(cfg.retryMax, cfg.retryBase * Math.pow(2, attempt - 1));
    clearTimeout(timer);
    timer = setTimeout(function () { timer = null; flush(); },
      after > 0 ? after * 1000 * (1 + Math.random() / 5) : ms * (0.5 + Math.random() / 2));
  }

  function beacon() { // the page may never run again: hand what is queued to the browser
    if (!navigator.sendBeacon || !cfg.writeKey || attempt || navigator.onLine === false) return;
    while (queue.length) { // a beacon carries at most 64 KB; a failing collector keeps the queue
      var n = take(60000);
      if (!navigator.sendBeacon(cfg.host + '/v1/batch', new Blob([body(queue.slice(0, n))], { type: 'text/plain' }))) break;
      queue.splice(0, n);
    }
    save();
  }
  d.addEventListener('visibilitychange', function () { if (d.visibilityState === 'hidden') beacon(); });
  w.addEventListener('pagehide', beacon);
  w.addEventListener('online', function () { attempt = 0; clearTimeout(timer); timer = null; flush(); });

  function page() {
    return { path: location.pathname, referrer: d.referrer, search: location.search, title: d.title, url: location.href };
  }
  function campaign() { // utm_* of this url, else of an earlier page of this visit
    var q = new URLSearchParams(location.search), c = {}, found = false,
      utm = { source: 'utm_source', medium: 'utm_medium', name: 'utm_campaign', term: 'utm_term', content: 'utm_content' };
    for (var f in utm) if (q.get(utm[f])) { c[f] = q.get(utm[f]); found = true; }
    if (found) session.set('utm', c);
    return found ? c : session.get('utm');
  }
  function context() {
    var c = {
      library: { name: 'trackflow.js', version: VERSION }, page: page(), userAgent: navigator.userAgent,
      locale: navigator.language, screen: { width: w.screen.width, height: w.screen.height }
    }, utm = campaign();
    try { c.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { /* old browser */ }
    if (utm) c.campaign = utm;
    return c;
  }
  function enqueue(ev) {
    ev.messageId = uuid(); ev.anonymousId = anonymousId; ev.timestamp = now(); ev.context = context();
    if (userId) ev.userId = userId;
    if (size(JSON.stringify(ev)) > 32000) return warn('event over 32 KB dropped: ' + (ev.event || ev.type));
    queue.push(ev);
    if (queue.length > cfg.maxQueue) queue.splice(0, queue.length - cfg.maxQueue);
    save();
    if (!attempt && !inflight && queue.length >= cfg.maxBatch) flush(); else schedule(cfg.flushInterval);
  }

  var api = {
    loaded: true, VERSION: VERSION,
    init: function (options) { assign(cfg, options || {}); if (queue.length) schedule(0); return api; },
    track: function (event, properties) { enqueue({ type: 'track', event: event, properties: properties || {} }); },
    page: function (name, properties) {
      if (typeof name === 'object') { properties = name; name = null; }
      var ev = { type: 'page', properties: assign(page(), properties || {}) };
      if (name) ev.name = name;
      enqueue(ev);
    },
    identify: function (id, traits) {
      if (typeof id === 'object' && id !== null) { traits = id; id = null; }
      if (id !== null && id !== undefined) { userId = String(id); local.set('userId', userId); }
      enqueue({ type: 'identify', traits: traits || {} });
    },
    flush: flush,
    reset: function () { userId = null; local.del('userId'); anonymousId = uuid(); local.set('anonymousId', anonymousId); },
    anonymousId: function () { return anonymousId; },
    userId: function () { return userId; }
  };
  w.trackflow = api;
  // calls made before this script ran: trackflow = {q: [['track', [...args]], ...]}
  if (prior && prior.q) for (var j = 0; j < prior.q.length; j++) api[prior.q[j][0]].apply(api, prior.q[j][1]);
  if (data.autoPage !== 'false') api.page();
  if (queue.length) schedule(0);
})(window, document);
