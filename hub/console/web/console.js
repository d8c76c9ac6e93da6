// Switchboard agent console: plain JavaScript, no build step.
//
// It speaks the agent gateway protocol (docs/agent-protocol.md) over one
// websocket. Security rules of this file, checked by console_test.go:
//
//   - Every string from the server (names, subjects, message text, error
//     messages) reaches the page through textContent or createTextNode,
//     never as markup: no innerHTML, outerHTML, insertAdjacentHTML or
//     document.write anywhere in this file.
//   - Message HTML, already sanitized by the hub, is shown as plain text.
//     The agent can open a formatted view, which is an iframe with
//     sandbox="" (no scripts, forms, popups or navigation; an opaque
//     origin) filled through srcdoc, and which inherits this page's CSP
//     (no remote images). Plain text is the default because it cannot go
//     wrong; the sandbox is the second wall if the sanitizer ever misses.
//   - The agent token lives in sessionStorage (gone when the tab closes)
//     and is sent only in the auth frame and the Authorization header of
//     attachment downloads, never in a URL.
//   - Inline mail images (cid:) are fetched with the token and put into
//     the formatted view as data: URLs; nothing else is loaded there.
'use strict';

(function () {
  const PROTOCOL = 1;
  const REQUEST_TIMEOUT_MS = 30000;
  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000, 30000];
  const TYPING_SHOW_MS = 8000;
  const TYPING_IDLE_MS = 4000;
  const STATES = ['queued', 'sent', 'delivered', 'read', 'failed'];
  const TICKET_STATUSES = ['new', 'open', 'pending', 'solved', 'closed'];

  const S = {
    token: sessionStorage.getItem('sb.token') || '',
    presence: sessionStorage.getItem('sb.presence') || '',
    agent: null,
    ws: null,
    ready: false,
    attempt: 0, // reconnect attempts since the last good session
    retryTimer: 0,
    nextId: 1,
    pending: new Map(), // request id -> {resolve, reject, timer}
    // The change-feed position up to which every update was seen; a
    // reconnect resumes after it. An instance's cursors are consecutive,
    // but live updates of different tickets may arrive out of order, so
    // the newest cursor seen is not the right one: one before it may be
    // still on its way. Kept in memory only: a reloaded page starts fresh
    // from the lists.
    cursor: null,
    ahead: new Set(), // cursors seen past `cursor`
    gapSince: 0, // when the oldest open gap before `ahead` was noticed
    tickets: new Map(), // ticket id -> ticket, those the list shows
    contacts: new Map(), // contact id -> {name, email}
    contactQueue: [],
    contactBusy: false,
    contactWanted: new Set(),
    offers: new Map(), // ticket id -> {ticket, expiresAt (ms or null)}
    filter: {scope: 'me', status: 'active', query: ''},
    listSeq: 0,
    reloadTimer: 0,
    current: null, // {id, ticket, contact, channelKind, policy}
    openSeq: 0,
    typingTimer: 0,
    myTyping: {on: false, sentAt: 0, idle: 0},
  };

  // ---- DOM helpers: text only ----

  const $ = (id) => document.getElementById(id);

  // el builds an element; children that are strings become text nodes.
  function el(tag, className, ...children) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  function setText(e, s) {
    e.textContent = s === null || s === undefined ? '' : String(s);
  }

  function fmtTime(s) {
    if (!s) return '';
    const d = new Date(s);
    if (isNaN(d.getTime())) return '';
    return d.toLocaleString();
  }

  function newKey() {
    const b = new Uint8Array(12);
    crypto.getRandomValues(b);
    return 'c-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  // ---- connection ----

  class RequestError extends Error {
    constructor(code, message, reason) {
      super(message || code || 'request failed');
      this.code = code || '';
      this.reason = reason || '';
    }
  }

  function gatewayURL() {
    const meta = document.querySelector('meta[name="switchboard-gateway"]');
    const u = new URL(meta ? meta.content : '/agent/ws', location.href);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.search = '';
    u.hash = '';
    return u.href;
  }

  function setConn(state, text) {
    const c = $('conn');
    c.className = 'conn conn-' + state;
    setText(c, text);
  }

  function connect() {
    clearTimeout(S.retryTimer);
    if (!S.token) return;
    if (S.ws) {
      const old = S.ws;
      S.ws = null;
      old.onclose = null;
      old.close(1000);
    }
    let ws;
    try {
      ws = new WebSocket(gatewayURL());
    } catch (e) {
      scheduleReconnect('could not open the connection');
      return;
    }
    S.ws = ws;
    S.ready = false;
    setConn('connecting', 'connecting…');
    ws.onopen = () => onOpen(ws);
    ws.onmessage = (ev) => onFrame(ws, ev);
    ws.onclose = (ev) => onClose(ws, ev);
  }

  async function onOpen(ws) {
    const resuming = S.cursor !== null;
    const fields = {token: S.token, protocol: PROTOCOL};
    // With a cursor the gateway replays the gap in the same step, so no
    // update can slip between joining and resuming.
    if (resuming) fields.cursor = S.cursor;
    // Offers are live state, not in the feed: the gateway sends the ones
    // still pending again after a resume, so drop what we showed.
    clearOffers();
    let ready;
    try {
      ready = await send(ws, 'auth', fields);
    } catch (e) {
      if (e.code === 'unauthorized') {
        signOutLocal('The token was refused. Check it and sign in again.');
      }
      return; // the gateway closes the socket; onClose decides the rest
    }
    if (ws !== S.ws) return;
    S.ready = true;
    S.attempt = 0;
    S.agent = ready.agent || null;
    setConn('up', 'connected');
    showApp();
    if (!resuming) {
      S.cursor = typeof ready.cursor === 'number' ? ready.cursor : 0;
      // A resume from the newest cursor replays nothing but sends the
      // offers already waiting for this agent.
      request('resume', {cursor: S.cursor}).catch(() => {});
    }
    if (S.presence) {
      setPresence(S.presence, false);
    }
    // Names that were being fetched when the last socket closed.
    S.contactWanted.clear();
    S.contactQueue = [];
    for (const t of S.tickets.values()) needContact(t);
    for (const o of S.offers.values()) needContact(o.ticket);
    if (!resuming) {
      loadTickets();
      if (S.current) openTicket(S.current.id);
    }
  }

  function onClose(ws, ev) {
    if (ws !== S.ws) return;
    S.ws = null;
    S.ready = false;
    for (const [, p] of S.pending) {
      clearTimeout(p.timer);
      p.reject(new RequestError('closed', 'the connection closed'));
    }
    S.pending.clear();
    switch (ev.code) {
      case 4001: // unauthorized: the same token will not work again
        signOutLocal(ev.reason ? 'Signed out: ' + ev.reason : 'Signed out: the token is no longer valid.');
        return;
      case 4002: // unsupported protocol: a newer server; reload the page
        setConn('down', 'this console is out of date: reload the page');
        return;
    }
    if (!S.token) {
      setConn('down', 'not connected');
      return;
    }
    scheduleReconnect(ev.reason || 'connection lost');
  }

  function scheduleReconnect(why) {
    clearTimeout(S.retryTimer);
    const base = BACKOFF_MS[Math.min(S.attempt, BACKOFF_MS.length - 1)];
    // Jitter, so that the agents of a restarted node do not all come back
    // in the same instant.
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    S.attempt++;
    setConn('down', why + ' — reconnecting in ' + Math.ceil(delay / 1000) + ' s');
    S.retryTimer = setTimeout(connect, delay);
  }

  function send(ws, type, fields) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(new RequestError('closed', 'not connected'));
        return;
      }
      const id = S.nextId++;
      const timer = setTimeout(() => {
        S.pending.delete(id);
        reject(new RequestError('timeout', 'the server did not answer'));
      }, REQUEST_TIMEOUT_MS);
      S.pending.set(id, {resolve, reject, timer});
      ws.send(JSON.stringify(Object.assign({}, fields, {type: type, id: id})));
    });
  }

  // request sends a frame on the current, authenticated socket and
  // resolves with the result's data.
  function request(type, fields) {
    if (!S.ready) return Promise.reject(new RequestError('closed', 'not connected'));
    return send(S.ws, type, fields || {});
  }

  // noteCursor records a cursor seen; upTo says that every cursor up to
  // it has been sent (resume.done).
  function noteCursor(c, upTo) {
    if (S.cursor === null) return;
    if (upTo) {
      if (c > S.cursor) S.cursor = c;
      for (const a of S.ahead) if (a <= S.cursor) S.ahead.delete(a);
    } else if (c > S.cursor) {
      S.ahead.add(c);
    }
    while (S.ahead.delete(S.cursor + 1)) S.cursor++;
    if (S.ahead.size === 0) S.gapSince = 0;
    else if (!S.gapSince) S.gapSince = Date.now();
  }

  // healGaps asks for the record after a gap that stays open: an update
  // lost between nodes. The gateway sends only what this socket has not
  // had.
  function healGaps() {
    if (!S.ready || !S.gapSince || Date.now() - S.gapSince < 3000) return;
    S.gapSince = Date.now();
    request('resume', {cursor: S.cursor}).catch(() => {});
  }

  function onFrame(ws, ev) {
    if (ws !== S.ws || typeof ev.data !== 'string') return;
    let f;
    try {
      f = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    if (!f || typeof f !== 'object') return;
    if (typeof f.cursor === 'number' && f.type !== 'ready') {
      noteCursor(f.cursor, f.type === 'resume.done');
    }
    const p = f.id !== undefined && f.id !== null ? S.pending.get(f.id) : undefined;
    switch (f.type) {
      case 'ready':
        if (p) settle(f.id, p, null, f);
        return;
      case 'result':
        if (p) settle(f.id, p, null, f.data || {});
        return;
      case 'error':
        if (p) {
          settle(f.id, p, new RequestError(f.code, f.message, f.reason));
        } else {
          showError(f.message || f.code);
        }
        return;
      case 'resume.done':
        if (f.reset) {
          // Too far behind to replay: reload what is on screen.
          loadTickets();
          if (S.current) openTicket(S.current.id);
        }
        if (p) settle(f.id, p, null, f);
        return;
      case 'ticket.updated':
        if (f.ticket) onTicket(f.ticket);
        return;
      case 'message.new':
        if (f.ticket) onTicket(f.ticket);
        if (f.message) onMessage(f.message);
        return;
      case 'message.state':
        if (f.message) onMessage(f.message);
        return;
      case 'ticket.offered':
        onOffer(f);
        return;
      case 'ticket.offer_revoked':
        removeOffer(f.ticket_id);
        return;
      case 'typing':
        onTyping(f);
        return;
    }
  }

  function settle(id, p, err, value) {
    clearTimeout(p.timer);
    S.pending.delete(id);
    if (err) p.reject(err);
    else p.resolve(value);
  }

  // ---- sign-in, presence ----

  function showSignIn(msg) {
    $('app').hidden = true;
    $('presence-box').hidden = true;
    $('signout').hidden = true;
    $('signin').hidden = false;
    setText($('signin-error'), msg || '');
    setText($('me'), '');
    $('token').focus();
  }

  function showApp() {
    $('signin').hidden = true;
    $('app').hidden = false;
    $('presence-box').hidden = false;
    $('signout').hidden = false;
    setText($('me'), S.agent ? S.agent.name + ' (agent ' + S.agent.id + ')' : '');
    $('presence').value = S.presence || 'offline';
  }

  // signOutLocal forgets the token and shows the sign-in form.
  function signOutLocal(msg) {
    S.token = '';
    sessionStorage.removeItem('sb.token');
    clearTimeout(S.retryTimer);
    if (S.ws) {
      const ws = S.ws;
      S.ws = null;
      ws.onclose = null;
      ws.close(1000);
    }
    S.ready = false;
    S.cursor = null;
    S.ahead.clear();
    S.gapSince = 0;
    S.agent = null;
    S.current = null;
    S.tickets.clear();
    S.contacts.clear();
    clearOffers();
    renderTickets();
    closeTicketView();
    setConn('down', 'not connected');
    showSignIn(msg);
  }

  async function setPresence(status, remember) {
    try {
      await request('presence', {status: status});
      if (remember) {
        S.presence = status;
        sessionStorage.setItem('sb.presence', status);
      }
      $('presence').value = status;
    } catch (e) {
      showError('Presence not changed: ' + e.message);
      $('presence').value = S.presence || 'offline';
    }
  }

  function showError(msg) {
    const e = S.current ? $('ticket-error') : $('signin-error');
    setText(e, msg || '');
    if (!S.current) setConn(S.ready ? 'up' : 'down', msg || '');
  }

  // ---- offers ----

  function onOffer(f) {
    const t = f.ticket || {id: f.ticket_id};
    let expiresAt = null;
    if (f.expires_at) {
      const ms = Date.parse(f.expires_at);
      if (!isNaN(ms)) expiresAt = ms;
    }
    S.offers.set(f.ticket_id, {ticket: t, expiresAt: expiresAt});
    needContact(t);
    renderOffers();
  }

  function removeOffer(ticketID) {
    if (S.offers.delete(ticketID)) renderOffers();
  }

  function clearOffers() {
    S.offers.clear();
    renderOffers();
  }

  function renderOffers() {
    const ul = $('offers');
    const items = [];
    for (const [id, o] of S.offers) {
      const t = o.ticket;
      const name = el('span', 'o-contact');
      fillContact(name, t.contact_id);
      const count = el('span', 'countdown');
      count.dataset.ticketId = String(id);
      const accept = el('button', 'accept', 'Accept');
      accept.type = 'button';
      accept.addEventListener('click', () => acceptOffer(id, accept));
      const decline = el('button', 'decline', 'Decline');
      decline.type = 'button';
      decline.addEventListener('click', () => declineOffer(id));
      const li = el('li', 'offer',
        el('div', 'offer-head', el('span', 't-number', '#' + (t.number || id)), ' ', name),
        el('div', 'o-subject', t.subject || ''),
        el('div', 'offer-actions', accept, decline, count));
      li.dataset.ticketId = String(id);
      items.push(li);
    }
    ul.replaceChildren(...items);
    $('offers-empty').hidden = items.length > 0;
    tickCountdowns();
  }

  function tickCountdowns() {
    const now = Date.now();
    for (const c of document.querySelectorAll('#offers .countdown')) {
      const o = S.offers.get(Number(c.dataset.ticketId));
      if (!o) continue;
      if (o.expiresAt === null) {
        setText(c, '');
        continue;
      }
      const left = Math.max(0, Math.ceil((o.expiresAt - now) / 1000));
      setText(c, left > 0 ? left + ' s left' : 'expired');
      c.classList.toggle('urgent', left <= 10);
    }
  }

  async function acceptOffer(id, button) {
    button.disabled = true;
    try {
      await request('ticket.accept', {ticket_id: id});
      removeOffer(id);
      openTicket(id);
    } catch (e) {
      if (e.code === 'offer_expired') removeOffer(id);
      button.disabled = false;
      setConn('up', 'Accept failed: ' + e.message);
    }
  }

  async function declineOffer(id) {
    try {
      await request('ticket.decline', {ticket_id: id});
    } catch (e) {
      // An offer that expired meanwhile is gone either way.
    }
    removeOffer(id);
  }

  // ---- contacts (names for the list) ----

  // The ticket list carries contact ids, not names; the names come from
  // ticket.get, one request at a time and once per contact.
  function needContact(t) {
    const cid = t.contact_id;
    if (!cid || S.contacts.has(cid) || S.contactWanted.has(cid)) return;
    S.contactWanted.add(cid);
    S.contactQueue.push({contactID: cid, ticketID: t.id});
    pumpContacts();
  }

  async function pumpContacts() {
    if (S.contactBusy) return;
    S.contactBusy = true;
    try {
      while (S.contactQueue.length > 0 && S.ready) {
        const job = S.contactQueue.shift();
        try {
          const v = await request('ticket.get', {ticket_id: job.ticketID});
          if (v.contact) learnContact(v.contact);
        } catch (e) {
          S.contactWanted.delete(job.contactID); // try again later
        }
      }
    } finally {
      S.contactBusy = false;
    }
  }

  function learnContact(c) {
    S.contacts.set(c.id, {name: c.name || '', email: c.email || ''});
    S.contactWanted.delete(c.id);
    for (const e of document.querySelectorAll('[data-contact-id="' + Number(c.id) + '"]')) {
      fillContact(e, c.id);
    }
  }

  // fillContact shows a contact's name in e, or a placeholder until it is
  // known. The name is data: text only.
  function fillContact(e, contactID) {
    e.dataset.contactId = String(Number(contactID) || 0);
    const c = S.contacts.get(contactID);
    e.classList.toggle('pending', !c);
    e.classList.toggle('unnamed', !!c && !c.name);
    if (!c) setText(e, '…');
    else setText(e, c.name || c.email || '(no name)');
  }

  // ---- ticket list ----

  function listRequest() {
    const f = S.filter;
    const req = {limit: 100};
    if (f.scope === 'me') req.assignee = 'me';
    else if (f.scope === 'none') req.assignee = 'none';
    if (f.status === 'active') req.status = ['new', 'open', 'pending'];
    else if (f.status !== 'any') req.status = [f.status];
    if (f.query) req.query = f.query;
    return req;
  }

  async function loadTickets() {
    const seq = ++S.listSeq;
    let data;
    try {
      data = await request('tickets.list', listRequest());
    } catch (e) {
      if (seq === S.listSeq) setConn(S.ready ? 'up' : 'down', 'Could not load tickets: ' + e.message);
      return;
    }
    if (seq !== S.listSeq) return; // a newer filter won
    S.tickets.clear();
    for (const t of data.tickets || []) {
      S.tickets.set(t.id, t);
      needContact(t);
    }
    renderTickets();
  }

  function scheduleReload() {
    clearTimeout(S.reloadTimer);
    S.reloadTimer = setTimeout(loadTickets, 400);
  }

  // matches tells whether the list's filter selects t; null when it
  // cannot tell (a search runs on the server).
  function matches(t) {
    const f = S.filter;
    if (f.scope === 'me' && !(S.agent && t.assignee_id === S.agent.id)) return false;
    if (f.scope === 'none' && t.assignee_id !== undefined && t.assignee_id !== null) return false;
    if (f.status === 'active' && !['new', 'open', 'pending'].includes(t.status)) return false;
    if (f.status !== 'active' && f.status !== 'any' && t.status !== f.status) return false;
    if (f.query) return null;
    return true;
  }

  function onTicket(t) {
    const m = matches(t);
    if (m === true || (m === null && S.tickets.has(t.id))) {
      S.tickets.set(t.id, t);
      needContact(t);
    } else if (m === false) {
      S.tickets.delete(t.id);
    } else {
      scheduleReload();
    }
    renderTickets();
    if (S.offers.has(t.id) && (t.assignee_id || t.status === 'solved' || t.status === 'closed')) {
      // Taken by someone (or closed): the offer is moot.
      removeOffer(t.id);
    }
    if (S.current && S.current.id === t.id) {
      S.current.ticket = t;
      renderTicketHead();
    }
  }

  function renderTickets() {
    const list = Array.from(S.tickets.values());
    list.sort((a, b) => (Date.parse(b.last_message_at) || 0) - (Date.parse(a.last_message_at) || 0) || b.id - a.id);
    const items = list.map((t) => {
      const name = el('span', 't-contact');
      fillContact(name, t.contact_id);
      const li = el('li', 'ticket-item',
        el('div', 'ticket-line', el('span', 't-number', '#' + t.number), ' ', name,
          statusBadge(t.status)),
        el('div', 't-subject', t.subject || '(no subject)'),
        el('div', 't-time muted', fmtTime(t.last_message_at)));
      li.dataset.ticketId = String(t.id);
      li.tabIndex = 0;
      li.setAttribute('role', 'button');
      if (S.current && S.current.id === t.id) li.classList.add('selected');
      li.addEventListener('click', () => openTicket(t.id));
      li.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          openTicket(t.id);
        }
      });
      return li;
    });
    $('tickets').replaceChildren(...items);
    $('tickets-empty').hidden = items.length > 0;
  }

  function statusBadge(status) {
    const s = TICKET_STATUSES.includes(status) ? status : 'other';
    return el('span', 'status status-' + s, status || '');
  }

  // ---- ticket view ----

  async function openTicket(id) {
    const seq = ++S.openSeq;
    let v;
    try {
      v = await request('ticket.get', {ticket_id: id});
    } catch (e) {
      if (seq === S.openSeq) setConn(S.ready ? 'up' : 'down', 'Could not open the ticket: ' + e.message);
      return;
    }
    if (seq !== S.openSeq) return;
    if (!S.current || S.current.id !== id) {
      clearCompose();
    }
    S.current = {
      id: id,
      ticket: v.ticket,
      contact: v.contact || null,
      channelKind: v.channel_kind || '',
      policy: v.policy || null,
    };
    if (v.contact) learnContact(v.contact);
    $('view-empty').hidden = true;
    $('ticket').hidden = false;
    setText($('ticket-error'), '');
    hideTyping();
    renderTicketHead();
    renderContact();
    $('messages').replaceChildren(...(v.messages || []).map(messageItem));
    scrollMessages();
    for (const li of document.querySelectorAll('#tickets .ticket-item')) {
      li.classList.toggle('selected', Number(li.dataset.ticketId) === id);
    }
  }

  function closeTicketView() {
    $('ticket').hidden = true;
    $('view-empty').hidden = false;
    $('messages').replaceChildren();
  }

  function renderTicketHead() {
    const c = S.current;
    const t = c.ticket;
    setText($('t-number'), '#' + t.number);
    setText($('t-subject'), t.subject || '(no subject)');
    const st = $('t-status');
    st.className = 'status status-' + (TICKET_STATUSES.includes(t.status) ? t.status : 'other');
    setText(st, t.status);
    let who = 'unassigned';
    if (t.assignee_id) who = S.agent && t.assignee_id === S.agent.id ? 'assigned to you' : 'assigned to agent ' + t.assignee_id;
    if (t.team_id) who += ', team ' + t.team_id;
    setText($('t-assignee'), who);
    setText($('t-channel'), c.channelKind ? 'via ' + c.channelKind : '');
    for (const b of document.querySelectorAll('.status-actions button')) {
      const s = b.dataset.status;
      b.hidden = s === 'open' ? !['solved', 'closed'].includes(t.status) : t.status === s;
    }
    const p = c.policy || {};
    const max = p.max_text_length || 0;
    const via = p.reply_via || '';
    const parts = [];
    if (max) parts.push('at most ' + max + ' characters');
    if (via) parts.push('replies leave by ' + via);
    setText($('policy'), parts.join('; '));
  }

  function renderContact() {
    const c = S.current.contact;
    setText($('contact-name'), c ? c.name : '');
    setText($('contact-email'), c && c.email ? c.email : '');
    const items = ((c && c.identities) || []).map((id) => {
      const dl = el('dl', 'identity-fields');
      const add = (k, v) => {
        if (v === undefined || v === null || v === '') return;
        dl.append(el('dt', '', k), el('dd', '', String(v)));
      };
      add('channel', id.channel_id);
      add('name', id.display_name);
      add('handle', id.handle);
      add('email', id.email);
      add('id', id.external_id);
      for (const k of Object.keys(id.fields || {}).sort()) add(k, id.fields[k]);
      return el('li', 'identity', dl);
    });
    $('identities').replaceChildren(...items);
  }

  function messageItem(m) {
    const kind = m.direction === 'in' ? 'in' : m.direction === 'note' ? 'note' : 'out';
    const label = {in: 'customer', out: 'reply', note: 'internal note'}[kind];
    const li = el('li', 'msg msg-' + kind,
      el('div', 'msg-head',
        el('span', 'msg-author', m.author_name || ''),
        el('span', 'msg-kind', label),
        el('time', 'msg-time', fmtTime(m.created_at))));
    li.dataset.messageId = String(m.id);
    if (m.subject) li.append(el('div', 'msg-subject', m.subject));
    li.append(el('div', 'msg-text', m.text || ''));
    if (m.quoted) {
      // The quoted history and signature of a mail reply: kept, collapsed.
      const d = el('details', 'msg-quoted', el('summary', '', 'Quoted text'), el('div', 'msg-quoted-text', m.quoted));
      li.append(d);
    }
    if (m.attachments && m.attachments.length) {
      li.append(el('ul', 'msg-attachments', ...m.attachments.map(attachmentItem)));
    }
    const meta = m.meta || {};
    if (meta.truncated === 'true') {
      li.append(el('div', 'msg-note-line muted', 'This message was too long and was cut.'));
    }
    if (m.auto_reply) {
      li.append(el('div', 'msg-note-line muted msg-auto',
        'Automatic reply' + (meta.auto_reply ? ' (' + meta.auto_reply + ')' : '') + ': it does not reopen the ticket or ask for an agent.'));
    }
    if (meta.other_contact === 'true') {
      li.append(el('div', 'msg-note-line msg-other-contact', 'From another person than the ticket\'s contact.'));
    }
    if (meta.parse_warnings) {
      li.append(el('div', 'msg-note-line muted', 'Parts of this mail could not be read: ' + meta.parse_warnings));
    }
    if (kind === 'out') li.append(deliveryLine(m));
    if (m.html) {
      const b = el('button', 'msg-formatted', 'Show formatted');
      b.type = 'button';
      b.addEventListener('click', () => toggleFormatted(li, b, m));
      li.append(b);
    }
    return li;
  }

  function deliveryLine(m) {
    const state = STATES.includes(m.state) ? m.state : 'queued';
    const d = el('div', 'msg-state',
      el('span', 'state state-' + state, m.state || 'queued'));
    if (m.state_reason) d.append(' ', el('span', 'state-reason', m.state_reason));
    return d;
  }

  function attachmentItem(a) {
    const label = (a.filename || 'attachment') + (a.size ? ' (' + a.size + ' bytes)' : '');
    const li = el('li', '');
    if (a.meta && a.meta.not_stored) {
      li.append(el('span', 'muted', label + ': not stored, ' + a.meta.not_stored));
      return li;
    }
    const b = el('button', 'link-button attachment-download', label);
    b.type = 'button';
    b.addEventListener('click', () => downloadAttachment(a, b));
    li.append(b);
    return li;
  }

  // fetchAttachment reads an attachment's bytes with the agent token.
  async function fetchAttachment(id) {
    const resp = await fetch('/agent/attachments/' + Number(id), {headers: {Authorization: 'Bearer ' + S.token}});
    if (!resp.ok) throw new Error((await resp.text()).trim() || resp.statusText);
    return resp.blob();
  }

  async function downloadAttachment(a, button) {
    try {
      const url = URL.createObjectURL(await fetchAttachment(a.id));
      const link = document.createElement('a');
      link.setAttribute('href', url); // an object URL of bytes we fetched, nothing from the server's text
      link.download = a.filename || 'attachment';
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      setText(button, (a.filename || 'attachment') + ': ' + err.message);
    }
  }

  function dataURL(blob) {
    return new Promise((resolve, reject) => {
      const r = new FileReader();
      r.onload = () => resolve(r.result);
      r.onerror = () => reject(r.error);
      r.readAsDataURL(blob);
    });
  }

  // inlineImages replaces cid: references of a mail's HTML with the inline
  // images' bytes as data: URLs; the page's CSP allows no other source.
  async function inlineImages(html, attachments) {
    for (const a of attachments || []) {
      if (!a.content_id || !html.includes('cid:' + a.content_id)) continue;
      try {
        const url = await dataURL(await fetchAttachment(a.id));
        if (!/^data:image\/(png|jpeg|gif|webp);base64,/.test(url)) continue;
        html = html.split('cid:' + a.content_id).join(url);
      } catch (err) {
        // The image stays missing; the text of the message is what matters.
      }
    }
    return html;
  }

  // toggleFormatted shows the sanitized HTML in a sandboxed iframe:
  // sandbox="" grants nothing (no scripts, no same origin, no forms, no
  // popups, no top navigation), srcdoc keeps it off the network.
  async function toggleFormatted(li, button, m) {
    const old = li.querySelector('iframe.msg-html');
    if (old) {
      old.remove();
      setText(button, 'Show formatted');
      return;
    }
    if (button.disabled) return;
    button.disabled = true;
    const f = document.createElement('iframe');
    f.setAttribute('sandbox', '');
    f.setAttribute('referrerpolicy', 'no-referrer');
    f.setAttribute('title', 'Formatted message');
    f.className = 'msg-html';
    f.srcdoc = await inlineImages(m.html, m.attachments);
    button.disabled = false;
    li.append(f);
    setText(button, 'Hide formatted');
  }

  function onMessage(m) {
    if (!S.current || m.ticket_id !== S.current.id) return;
    if (m.direction === 'in') hideTyping();
    const ul = $('messages');
    const old = ul.querySelector('li[data-message-id="' + Number(m.id) + '"]');
    const stuck = ul.scrollHeight - ul.scrollTop - ul.clientHeight < 40;
    if (old) {
      // A delivery update may carry the message without its attachments;
      // keep an open formatted view.
      const fresh = messageItem(m);
      const frame = old.querySelector('iframe.msg-html');
      if (frame && m.html) {
        fresh.append(frame);
        setText(fresh.querySelector('.msg-formatted'), 'Hide formatted');
      }
      if (!m.attachments) {
        const atts = old.querySelector('.msg-attachments');
        if (atts) fresh.querySelector('.msg-text').after(atts);
      }
      old.replaceWith(fresh);
      return;
    }
    // Keep the list in id order even if updates arrive out of order.
    let before = null;
    for (const li of ul.children) {
      if (Number(li.dataset.messageId) > m.id) {
        before = li;
        break;
      }
    }
    ul.insertBefore(messageItem(m), before);
    if (stuck) scrollMessages();
  }

  function scrollMessages() {
    const ul = $('messages');
    ul.scrollTop = ul.scrollHeight;
  }

  // ---- typing ----

  function onTyping(f) {
    if (!S.current || f.ticket_id !== S.current.id) return;
    if (S.agent && f.from === S.agent.name) return; // our own echo
    if (f.signal === 'typing_stop') {
      hideTyping();
      return;
    }
    const p = $('typing');
    setText(p, typist(f.from) + ' is typing…');
    p.hidden = false;
    clearTimeout(S.typingTimer);
    S.typingTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
  }

  // typist names who types: channels name the end user by their id on
  // the channel (a visitor id), which the contact's identities map to a
  // name.
  function typist(from) {
    const c = S.current && S.current.contact;
    for (const id of (c && c.identities) || []) {
      if (from && id.external_id === from) return id.display_name || c.name || 'The customer';
    }
    return from || 'Someone';
  }

  function hideTyping() {
    clearTimeout(S.typingTimer);
    $('typing').hidden = true;
  }

  function typed() {
    if (!S.current) return;
    const me = S.myTyping;
    const id = S.current.id;
    const now = Date.now();
    if (!me.on || now - me.sentAt > TYPING_IDLE_MS) {
      me.on = true;
      me.sentAt = now;
      request('typing', {ticket_id: id, on: true}).catch(() => {});
    }
    clearTimeout(me.idle);
    me.idle = setTimeout(() => stopTyping(id), TYPING_IDLE_MS);
  }

  function stopTyping(id) {
    const me = S.myTyping;
    clearTimeout(me.idle);
    if (!me.on) return;
    me.on = false;
    request('typing', {ticket_id: id, on: false}).catch(() => {});
  }

  // ---- composing and actions ----

  function clearCompose() {
    for (const id of ['reply-text', 'note-text']) {
      const ta = $(id);
      ta.value = '';
      delete ta.dataset.key;
    }
    if (S.current) stopTyping(S.current.id);
  }

  async function compose(kind) {
    if (!S.current) return;
    const ta = kind === 'reply' ? $('reply-text') : $('note-text');
    const form = kind === 'reply' ? $('reply-form') : $('note-form');
    const text = ta.value;
    if (!text.trim()) return;
    const id = S.current.id;
    // The key survives a failed attempt, so that resending the same text
    // after a lost answer stores it once; editing the text drops it.
    if (!ta.dataset.key) ta.dataset.key = newKey();
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    setText($('ticket-error'), '');
    try {
      const r = await request(kind === 'reply' ? 'message.reply' : 'message.note',
        {ticket_id: id, text: text, idempotency_key: ta.dataset.key});
      if (kind === 'reply') stopTyping(id);
      if (S.current && S.current.id === id) {
        ta.value = '';
        delete ta.dataset.key;
        if (r.message) onMessage(r.message);
      }
    } catch (e) {
      setText($('ticket-error'), (kind === 'reply' ? 'Reply not sent: ' : 'Note not added: ') + e.message);
    } finally {
      button.disabled = false;
    }
  }

  async function setStatus(status) {
    if (!S.current) return;
    setText($('ticket-error'), '');
    try {
      const r = await request('ticket.status', {ticket_id: S.current.id, status: status});
      if (r.ticket) onTicket(r.ticket);
    } catch (e) {
      setText($('ticket-error'), 'Status not changed: ' + e.message);
    }
  }

  async function transfer() {
    if (!S.current) return;
    const n = Number($('transfer-id').value);
    if (!Number.isInteger(n) || n <= 0) {
      setText($('ticket-error'), 'Give a positive agent or team id.');
      return;
    }
    const req = {ticket_id: S.current.id};
    if ($('transfer-kind').value === 'team') req.team_id = n;
    else req.agent_id = n;
    setText($('ticket-error'), '');
    try {
      await request('ticket.transfer', req);
      $('transfer-id').value = '';
      setText($('ticket-error'), 'Transferred.');
    } catch (e) {
      setText($('ticket-error'), 'Not transferred: ' + e.message);
    }
  }

  // ---- wiring ----

  function wire() {
    $('signin-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const tok = $('token').value.trim();
      if (!tok) return;
      $('token').value = '';
      S.token = tok;
      sessionStorage.setItem('sb.token', tok);
      S.attempt = 0;
      S.cursor = null;
      S.ahead.clear();
      S.gapSince = 0;
      setText($('signin-error'), '');
      connect();
    });
    $('signout').addEventListener('click', async () => {
      // Going offline first: an agent who left must not be offered chats.
      if (S.ready) await request('presence', {status: 'offline'}).catch(() => {});
      sessionStorage.removeItem('sb.presence');
      S.presence = '';
      signOutLocal('');
    });
    $('presence').addEventListener('change', (ev) => setPresence(ev.target.value, true));
    for (const r of document.querySelectorAll('input[name="scope"]')) {
      r.addEventListener('change', () => {
        if (!r.checked) return;
        S.filter.scope = r.value;
        loadTickets();
      });
    }
    $('status-filter').addEventListener('change', (ev) => {
      S.filter.status = ev.target.value;
      loadTickets();
    });
    $('search').addEventListener('input', (ev) => {
      S.filter.query = ev.target.value.trim();
      scheduleReload();
    });
    $('reply-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      compose('reply');
    });
    $('note-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      compose('note');
    });
    for (const id of ['reply-text', 'note-text']) {
      const ta = $(id);
      ta.addEventListener('input', () => {
        delete ta.dataset.key;
        if (id === 'reply-text') typed();
      });
      ta.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
          ev.preventDefault();
          compose(id === 'reply-text' ? 'reply' : 'note');
        }
      });
    }
    for (const b of document.querySelectorAll('.status-actions button')) {
      b.addEventListener('click', () => setStatus(b.dataset.status));
    }
    $('transfer-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      transfer();
    });
    // Back online: try now rather than at the end of the backoff.
    window.addEventListener('online', () => {
      if (S.token && !S.ws) {
        S.attempt = 0;
        connect();
      }
    });
    setInterval(tickCountdowns, 1000);
    setInterval(healGaps, 1000);
  }

  wire();
  if (S.token) {
    connect();
  } else {
    showSignIn('');
  }
})();
