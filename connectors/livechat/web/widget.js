/*
 * Switchboard live-chat widget. Plain JS, no build step, no dependencies.
 *
 * Embed with <script src="https://HUB/channels/CHANNEL/widget.js" async></script>.
 * It speaks protocol v1 of connectors/livechat/README.md over the "ws" route
 * next to this file.
 *
 * Security: every text from the network is put in the page with textContent,
 * never innerHTML, so hostile text stays inert. The visitor token lives in
 * localStorage of the embedding site; unsent messages live in sessionStorage
 * of the tab, so a reload resends them (the server deduplicates by client id).
 */
(function () {
  'use strict';

  var script = document.currentScript;
  if (!script || !script.src) { return; }
  var base = script.src.replace(/[?#].*$/, '').replace(/[^\/]*$/, '');
  var registry = window.__switchboardLivechat = window.__switchboardLivechat || {};
  if (registry[base]) { return; } // embedded twice
  registry[base] = true;

  var PROTOCOL = 1;
  var PING_EVERY = 25000, PONG_WAIT = 10000;
  var TYPING_EVERY = 2000, TYPING_IDLE = 3000, TYPING_SHOWN = 6000;
  var key = 'sb-livechat:' + base;

  // ---- storage (both may be unavailable: private modes, blocked cookies)
  function get(store, k) { try { return window[store].getItem(key + k); } catch (e) { return null; } }
  function put(store, k, v) {
    try { if (v == null) { window[store].removeItem(key + k); } else { window[store].setItem(key + k, v); } } catch (e) { /* memory only */ }
  }

  // ---- state
  var token = get('localStorage', ':token');
  var contact = parseJSON(get('localStorage', ':contact')) || null;
  var pending = new Map(); // client_id -> {text, el, timer}
  var shown = new Map();   // message id -> element
  var readSent = new Set();
  var lastId = 0, conversationId = 0, cfg = null;
  var ws = null, ready = false, attempt = 0, reconnectTimer = 0;
  var pingTimer = 0, pongTimer = 0;
  var typingActive = false, typingSentAt = 0, typingIdleTimer = 0, agentTypingTimer = 0;
  var unread = 0, open = get('sessionStorage', ':open') === '1';
  var maxLen = 4000;

  function parseJSON(s) { try { return s ? JSON.parse(s) : null; } catch (e) { return null; } }

  // ---- DOM, built with createElement and textContent only
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text != null) { e.textContent = text; }
    return e;
  }

  var css = document.createElement('link');
  css.rel = 'stylesheet';
  css.href = base + 'widget.css';
  document.head.appendChild(css);

  var root = el('div', 'sbl-root');
  var launcher = el('button', 'sbl-launcher');
  launcher.type = 'button';
  launcher.setAttribute('aria-label', 'Open chat');
  launcher.appendChild(el('span', 'sbl-launcher-icon', '\u{1F4AC}'));
  var badge = el('span', 'sbl-badge');
  badge.hidden = true;
  launcher.appendChild(badge);

  var panel = el('section', 'sbl-panel');
  panel.setAttribute('role', 'dialog');
  panel.hidden = true;
  var header = el('header', 'sbl-header');
  var title = el('span', 'sbl-title', 'Chat with us');
  var status = el('span', 'sbl-status', '');
  var closeBtn = el('button', 'sbl-close', '\u00D7');
  closeBtn.type = 'button';
  closeBtn.setAttribute('aria-label', 'Close chat');
  header.appendChild(title);
  header.appendChild(status);
  header.appendChild(closeBtn);

  var greeting = el('p', 'sbl-greeting', '');
  var list = el('ol', 'sbl-messages');
  list.setAttribute('aria-live', 'polite');
  var typingLine = el('div', 'sbl-typing', '');
  typingLine.hidden = true;

  var contactForm = el('form', 'sbl-contact');
  contactForm.hidden = true;
  contactForm.appendChild(el('span', 'sbl-contact-note', 'Optional: how can we reach you?'));
  var nameInput = el('input', 'sbl-input');
  nameInput.placeholder = 'Your name';
  nameInput.maxLength = 100;
  nameInput.autocomplete = 'name';
  var emailInput = el('input', 'sbl-input');
  emailInput.type = 'email';
  emailInput.placeholder = 'Email';
  emailInput.maxLength = 254;
  emailInput.autocomplete = 'email';
  var contactSave = el('button', 'sbl-button', 'Save');
  contactSave.type = 'submit';
  contactForm.appendChild(nameInput);
  contactForm.appendChild(emailInput);
  contactForm.appendChild(contactSave);

  var compose = el('form', 'sbl-compose');
  var input = el('textarea', 'sbl-text-input');
  input.rows = 2;
  input.placeholder = 'Write a message\u2026';
  input.setAttribute('aria-label', 'Message');
  var sendBtn = el('button', 'sbl-button', 'Send');
  sendBtn.type = 'submit';
  var notice = el('div', 'sbl-notice', '');
  notice.hidden = true;
  compose.appendChild(input);
  compose.appendChild(sendBtn);

  panel.appendChild(header);
  panel.appendChild(greeting);
  panel.appendChild(list);
  panel.appendChild(typingLine);
  panel.appendChild(notice);
  panel.appendChild(contactForm);
  panel.appendChild(compose);
  root.appendChild(panel);
  root.appendChild(launcher);

  function mount() { document.body.appendChild(root); }
  if (document.body) { mount(); } else { document.addEventListener('DOMContentLoaded', mount); }

  // ---- rendering
  function timeText(iso) {
    var d = iso ? new Date(iso) : new Date();
    if (isNaN(d.getTime())) { return ''; }
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  var stateText = { sending: 'Sending\u2026', sent: 'Sent', delivered: 'Delivered', read: 'Read', failed: 'Not sent' };

  function setState(li, state, why) {
    li.dataset.state = state;
    var s = li.querySelector('.sbl-state');
    if (s) { s.textContent = why ? stateText[state] + ': ' + why : (stateText[state] || ''); }
  }

  function renderMessage(m, state) {
    var li = el('li', 'sbl-msg sbl-from-' + (m.from === 'agent' ? 'agent' : 'visitor'));
    if (m.from === 'agent' && m.author) { li.appendChild(el('div', 'sbl-author', m.author)); }
    li.appendChild(el('div', 'sbl-body', m.text));
    var meta = el('div', 'sbl-meta');
    meta.appendChild(el('span', 'sbl-time', timeText(m.created_at)));
    if (m.from !== 'agent') { meta.appendChild(el('span', 'sbl-state', '')); }
    li.appendChild(meta);
    if (m.from !== 'agent') { setState(li, state || m.state || 'sent'); }
    return li;
  }

  // place inserts a stored message in id order, before pending ones.
  function place(li, id) {
    li.dataset.id = String(id);
    var before = null;
    for (var n = list.firstElementChild; n; n = n.nextElementSibling) {
      if (!n.dataset.id || Number(n.dataset.id) > id) { before = n; break; }
    }
    list.insertBefore(li, before);
  }

  function scrollDown() { list.scrollTop = list.scrollHeight; }

  // show adds one stored message unless this tab shows it already.
  function show(m) {
    if (!m || !m.id || shown.has(m.id)) { return; }
    var p = m.client_id && pending.get(m.client_id);
    if (p) { // our own message, stored: the pending bubble becomes it
      forgetPending(m.client_id);
      p.el.remove();
    }
    var li = renderMessage(m);
    place(li, m.id);
    shown.set(m.id, li);
    if (m.id > lastId) { lastId = m.id; }
    greeting.hidden = true;
    if (m.from === 'agent') {
      if (m.state === 'read') {
        readSent.add(m.id);
      } else {
        if (m.state !== 'delivered') { queueDelivered(m.id); }
        if (!isVisible()) { unread++; updateBadge(); }
      }
    }
    scrollDown();
  }

  // Delivery receipts of agent replies go out in batches (a history page
  // is one frame, not two hundred).
  var toDeliver = [], deliverTimer = 0;
  function queueDelivered(id) {
    toDeliver.push(id);
    if (!deliverTimer) { deliverTimer = setTimeout(flushDelivered, 0); }
  }
  function flushDelivered() {
    deliverTimer = 0;
    while (toDeliver.length) {
      sendFrame({ type: 'message.state', state: 'delivered', message_ids: toDeliver.splice(0, 100) });
    }
  }

  function clearConversation() {
    shown.forEach(function (li) { li.remove(); });
    shown.clear();
    readSent.clear();
    lastId = 0;
    greeting.hidden = false;
  }

  function updateBadge() {
    badge.hidden = unread === 0;
    badge.textContent = unread > 9 ? '9+' : String(unread);
  }

  function setStatus(text) { status.textContent = text; }

  function showNotice(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  // ---- pending messages: kept per tab across reloads until acknowledged
  function savePending() {
    var arr = [];
    pending.forEach(function (p, id) { if (!p.failed) { arr.push({ client_id: id, text: p.text }); } });
    put('sessionStorage', ':pending', arr.length ? JSON.stringify(arr) : null);
  }

  function forgetPending(id) {
    var p = pending.get(id);
    if (p && p.timer) { clearTimeout(p.timer); }
    pending.delete(id);
    savePending();
  }

  function addPending(id, text) {
    var li = renderMessage({ from: 'visitor', text: text }, 'sending');
    list.appendChild(li);
    pending.set(id, { text: text, el: li, timer: 0, failed: false });
    greeting.hidden = true;
    scrollDown();
  }

  function sendPending(id) {
    var p = pending.get(id);
    if (!p || p.failed) { return; }
    p.timer = 0;
    setState(p.el, 'sending');
    sendFrame({ type: 'message.send', client_id: id, text: p.text });
  }

  function newClientId() {
    var b = new Uint8Array(12);
    crypto.getRandomValues(b);
    return 'c' + Array.prototype.map.call(b, function (x) { return ('0' + x.toString(16)).slice(-2); }).join('');
  }

  (parseJSON(get('sessionStorage', ':pending')) || []).forEach(function (p) {
    if (p && typeof p.client_id === 'string' && typeof p.text === 'string') { addPending(p.client_id, p.text); }
  });

  // ---- the socket
  function sendFrame(f) {
    if (!ws || ws.readyState !== 1 || (!ready && f.type !== 'session.start' && f.type !== 'ping')) { return false; }
    ws.send(JSON.stringify(f));
    return true;
  }

  function startSession(withAfter) {
    var f = { type: 'session.start', v: PROTOCOL, page_url: location.origin + location.pathname };
    if (token) { f.token = token; }
    if (withAfter && lastId) { f.after = lastId; }
    if (contact) {
      if (contact.name) { f.name = contact.name; }
      if (contact.email) { f.email = contact.email; }
    }
    ready = false;
    sendFrame(f);
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = 0;
    if (ws) { return; }
    setStatus('Connecting\u2026');
    var url = base.replace(/^http/, 'ws') + 'ws';
    var sock;
    try { sock = new WebSocket(url); } catch (e) { scheduleReconnect(); return; }
    ws = sock;
    sock.onopen = function () {
      if (ws !== sock) { return; }
      startSession(true);
      heartbeat();
    };
    sock.onmessage = function (ev) {
      if (ws !== sock) { return; }
      heartbeat();
      var f = parseJSON(ev.data);
      if (f && typeof f.type === 'string') { onFrame(f); }
    };
    sock.onclose = function () {
      if (ws !== sock) { return; }
      ws = null;
      ready = false;
      clearTimeout(pingTimer);
      clearTimeout(pongTimer);
      setStatus('Offline \u2013 reconnecting\u2026');
      scheduleReconnect();
    };
  }

  // Reconnect with exponential backoff and jitter, so that a restarted hub
  // is not hit by every visitor at the same instant.
  function scheduleReconnect() {
    if (reconnectTimer) { return; }
    var delay = Math.min(30000, 500 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
    attempt++;
    reconnectTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (!ws && (open || token)) { attempt = 0; connect(); }
  }

  // heartbeat: any frame proves the socket alive; after a quiet spell a
  // ping must be answered, else the socket is given up and reopened.
  function heartbeat() {
    clearTimeout(pingTimer);
    clearTimeout(pongTimer);
    pingTimer = setTimeout(function () {
      if (sendFrame({ type: 'ping' })) {
        pongTimer = setTimeout(function () { if (ws) { ws.close(); } }, PONG_WAIT);
      }
    }, PING_EVERY);
  }

  function onFrame(f) {
    switch (f.type) {
      case 'session.ready': return onReady(f);
      case 'message.ack': return onAck(f);
      case 'message.new': return show(f.message);
      case 'history':
        (f.messages || []).forEach(show);
        if (f.more) { sendFrame({ type: 'resume', after: lastId }); }
        return markRead();
      case 'typing': return onTyping(f);
      case 'seen':
        shown.forEach(function (li) { if (li.classList.contains('sbl-from-visitor')) { setState(li, 'read'); } });
        return;
      case 'conversation.changed':
        return startSession(false);
      case 'error': return onError(f);
      case 'pong': return;
    }
  }

  function onReady(f) {
    token = f.token;
    put('localStorage', ':token', token);
    if (conversationId && f.conversation_id !== conversationId) { clearConversation(); }
    conversationId = f.conversation_id;
    applyConfig(f.widget || {});
    ready = true;
    attempt = 0;
    setStatus('');
    showNotice('');
    (f.history || []).forEach(show);
    if (f.more) { sendFrame({ type: 'resume', after: lastId }); }
    pending.forEach(function (p, id) { sendPending(id); });
    markRead();
  }

  function applyConfig(w) {
    cfg = w;
    if (w.title) { title.textContent = w.title; panel.setAttribute('aria-label', w.title); }
    if (w.greeting) { greeting.textContent = w.greeting; }
    // The server only lets #rrggbb through; setProperty (CSSOM) needs no
    // 'unsafe-inline' in the page's CSP.
    if (/^#[0-9a-fA-F]{6}$/.test(w.color || '')) { root.style.setProperty('--sbl-color', w.color); }
    if (w.max_message_length) { maxLen = w.max_message_length; }
    contactForm.hidden = !(w.ask_contact && !contact);
  }

  function onAck(f) {
    var p = pending.get(f.client_id);
    if (!p) { return; }
    forgetPending(f.client_id);
    if (f.conversation_id && conversationId && f.conversation_id !== conversationId) {
      // A closed conversation was replaced by a new one for this message.
      clearConversation();
      conversationId = f.conversation_id;
    }
    if (shown.has(f.message_id)) { p.el.remove(); return; }
    setState(p.el, 'sent');
    p.el.remove();
    place(p.el, f.message_id);
    shown.set(f.message_id, p.el);
    if (f.message_id > lastId) { lastId = f.message_id; }
  }

  function onTyping(f) {
    clearTimeout(agentTypingTimer);
    if (!f.active) { typingLine.hidden = true; return; }
    typingLine.textContent = (f.author || 'Support') + ' is typing\u2026';
    typingLine.hidden = false;
    agentTypingTimer = setTimeout(function () { typingLine.hidden = true; }, TYPING_SHOWN);
  }

  function onError(f) {
    var p = f.client_id && pending.get(f.client_id);
    switch (f.code) {
      case 'token_invalid':
      case 'token_expired':
        // Start over as a new visitor; the old conversation stays with
        // the agents.
        token = null;
        put('localStorage', ':token', null);
        clearConversation();
        conversationId = 0;
        return startSession(false);
      case 'rate_limited':
      case 'deliver_failed':
        if (p) {
          setState(p.el, 'sending');
          p.timer = setTimeout(function () { sendPending(f.client_id); }, Math.max(500, f.retry_after_ms || 1000));
        }
        return;
      case 'unavailable':
        showNotice('The chat is unavailable right now. Retrying\u2026');
        if (ws) { ws.close(); }
        return;
    }
    if (p) { // the server refused this message for good
      p.failed = true;
      savePending();
      setState(p.el, 'failed', f.message);
      return;
    }
    if (window.console) { console.warn('switchboard livechat:', f.code, f.message); }
  }

  // ---- read state: agent replies count as read while the panel is open
  // and the page visible.
  function isVisible() { return open && document.visibilityState === 'visible'; }

  function markRead() {
    if (!isVisible() || !ready) { return; }
    var ids = [];
    shown.forEach(function (li, id) {
      if (li.classList.contains('sbl-from-agent') && !readSent.has(id)) { ids.push(id); }
    });
    for (var i = 0; i < ids.length; i += 100) {
      var batch = ids.slice(i, i + 100);
      if (sendFrame({ type: 'message.state', state: 'read', message_ids: batch })) {
        batch.forEach(function (id) { readSent.add(id); });
      }
    }
    unread = 0;
    updateBadge();
  }

  // ---- typing: a start at most every TYPING_EVERY, a stop after a pause
  function typed() {
    var now = Date.now();
    if (!typingActive || now - typingSentAt > TYPING_EVERY) {
      if (sendFrame({ type: 'typing', active: true })) { typingActive = true; typingSentAt = now; }
    }
    clearTimeout(typingIdleTimer);
    typingIdleTimer = setTimeout(stopTyping, TYPING_IDLE);
  }

  function stopTyping() {
    clearTimeout(typingIdleTimer);
    if (typingActive) { sendFrame({ type: 'typing', active: false }); typingActive = false; }
  }

  // ---- events
  function setOpen(v, initial) {
    open = v;
    put('sessionStorage', ':open', v ? '1' : null);
    panel.hidden = !v;
    launcher.setAttribute('aria-expanded', v ? 'true' : 'false');
    if (v) {
      reconnectNow();
      markRead();
      if (!initial) { input.focus(); }
      scrollDown();
    }
  }

  launcher.addEventListener('click', function () { setOpen(!open); });
  closeBtn.addEventListener('click', function () { setOpen(false); });

  compose.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var text = input.value;
    if (!text.trim()) { return; }
    if (Array.from(text).length > maxLen) {
      showNotice('Your message is too long (at most ' + maxLen + ' characters).');
      return;
    }
    showNotice('');
    var id = newClientId();
    addPending(id, text);
    savePending();
    input.value = '';
    stopTyping();
    if (!sendFrame({ type: 'message.send', client_id: id, text: text })) { reconnectNow(); }
  });

  input.addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      compose.requestSubmit ? compose.requestSubmit() : sendBtn.click();
    }
  });
  input.addEventListener('input', function () { if (input.value) { typed(); } else { stopTyping(); } });

  contactForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var name = nameInput.value.trim(), email = emailInput.value.trim();
    if (email && !emailInput.checkValidity()) { showNotice('Please check the email address.'); return; }
    contact = { name: name, email: email };
    put('localStorage', ':contact', JSON.stringify(contact));
    contactForm.hidden = true;
    showNotice('');
    // A second session.start on the live socket passes the contact on.
    if (ready) { startSession(true); }
  });

  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'visible') { reconnectNow(); markRead(); }
  });
  window.addEventListener('online', reconnectNow);

  // Another tab got a token first (two tabs opened at once on a first
  // visit): join its conversation if this tab has nothing of its own.
  window.addEventListener('storage', function (ev) {
    if (ev.key !== key + ':token' || !ev.newValue || ev.newValue === token) { return; }
    if (shown.size === 0 && pending.size === 0) {
      token = ev.newValue;
      if (ws && ready) { startSession(false); }
    }
  });

  setOpen(open, true);
  // A returning visitor connects at once (history, replies that came while
  // away); a new one only when opening the chat.
  if (token || pending.size) { connect(); }
})();
