extension WebAssets {
    /// The page's script. Text from the wire is only ever put in with `textContent` (or as an
    /// attribute value through `setAttribute`), never parsed as HTML.
    static let appJS: StaticString = #"""
        'use strict';
        (function () {
          const ACTIONS = [
            ['start', 'Start', ''], ['shutdown', 'Shut down', ''], ['destroy', 'Destroy', 'danger'],
            ['reboot', 'Reboot', ''], ['suspend', 'Suspend', ''], ['resume', 'Resume', ''],
          ];
          // The fields of an E2LibvirtError in the order a person reads them; any others follow.
          const FIELD_ORDER = ['summary', 'code', 'code_name', 'domain', 'domain_name', 'level', 'message',
            'str1', 'str2', 'str3', 'int1', 'int2', 'category', 'retryable', 'type', 'id', 'op', 'machine',
            'reason', 'field', 'detail', 'worker', 'run', 'seq', 'ts', 'v'];
          const S = {
            rev: 0, csrf: '', user: null, source: null,
            hosts: new Map(),        // id -> host view
            errors: [],              // newest last
            commands: new Map(),     // id -> command
            mine: new Set(),         // ids of commands this page sent and waits for
            filter: '',
          };

          function el(tag, className, text) {
            const e = document.createElement(tag);
            if (className) e.className = className;
            if (text !== undefined && text !== null) e.textContent = String(text);
            return e;
          }
          function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
          function timeOf(ts) {
            if (typeof ts !== 'string') return '';
            const m = /T(\d\d:\d\d:\d\d)/.exec(ts);
            return m ? m[1] : ts;
          }
          function kib(n) {
            if (typeof n !== 'number') return '–';
            const units = ['KiB', 'MiB', 'GiB', 'TiB'];
            let v = n, u = 0;
            while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
            return v.toFixed(1) + ' ' + units[u];
          }
          function display(v) {
            if (v === null || v === undefined) return 'null';
            if (typeof v === 'string') return v;
            return JSON.stringify(v);
          }

          // MARK: state from the console

          async function load() {
            let response;
            try {
              response = await fetch('/api/state', { credentials: 'same-origin', cache: 'no-store' });
            } catch (e) {
              setConnection('console unreachable', 'down');
              setTimeout(load, 2000);
              return;
            }
            if (response.status === 401) { location.href = '/login'; return; }
            if (!response.ok) { setConnection('console error ' + response.status, 'down'); setTimeout(load, 2000); return; }
            const state = await response.json();
            S.rev = state.rev;
            S.csrf = state.csrf;
            S.user = state.user;
            const who = document.getElementById('who');
            who.textContent = state.user ? 'signed in as ' + state.user : '';
            document.getElementById('logout').hidden = !state.user;
            renderAll(state);
            listen();
          }

          function listen() {
            if (S.source) S.source.close();
            const source = new EventSource('/api/events?since=' + encodeURIComponent(S.rev));
            S.source = source;
            const on = (name, fn) => source.addEventListener(name, (ev) => {
              if (ev.lastEventId) S.rev = Number(ev.lastEventId);
              let data;
              try { data = JSON.parse(ev.data); } catch (e) { return; }
              fn(data);
            });
            on('host', (d) => updateHost(d));
            on('machines', (d) => { const h = S.hosts.get(d.host); if (h) setMachines(h, d.machines); });
            on('machine', (d) => { const h = S.hosts.get(d.host); if (h) upsertMachine(h, d.machine); });
            on('error_list', (d) => replaceErrors(d.host, d.errors));
            on('error_entry', (d) => addError(d.error, true));
            on('restore', (d) => { const h = S.hosts.get(d.host); if (h) renderRestore(h, d.restore); });
            on('command', (d) => onCommand(d.command));
            source.addEventListener('resync', () => { source.close(); S.source = null; load(); });
            source.onopen = () => setConnection('live', 'live');
            source.onerror = () => {
              if (source.readyState === EventSource.CLOSED) { S.source = null; setTimeout(load, 1000); }
              setConnection('reconnecting…', 'down');
            };
          }

          function setConnection(text, kind) {
            const badge = document.getElementById('connection');
            badge.textContent = text;
            badge.className = 'badge ' + kind;
          }

          // MARK: hosts and machines

          function renderAll(state) {
            const root = document.getElementById('hosts');
            clear(root);
            S.hosts.clear();
            for (const info of state.hosts) {
              const h = makeHost(info);
              root.appendChild(h.section);
              S.hosts.set(info.id, h);
              updateHost(info);
              setMachines(h, info.machines);
              renderRestore(h, info.restore);
            }
            S.errors = [];
            clear(document.querySelector('#errors tbody'));
            for (const e of state.errors) addError(e, false);
            updateErrorCount();
            S.commands.clear();
            clear(document.querySelector('#commands tbody'));
            for (const c of state.commands) onCommand(c);
          }

          function makeHost(info) {
            const section = el('section', 'host down');
            section.setAttribute('data-host', info.id);
            const header = el('header');
            const title = el('h2', null, info.id);
            const status = el('span', 'badge down status', 'down');
            const reason = el('span', 'reason');
            const meta = el('span', 'meta');
            const spacer = el('span', 'spacer');
            const restore = el('button', 'restore-button', 'Restore');
            restore.type = 'button';
            restore.title = 'Bring back the machines that should run and do not';
            restore.addEventListener('click', () => hostAction(info.id, restore));
            header.append(title, status, reason, meta, spacer, restore);
            const wrap = el('div', 'machines-wrap');
            const table = el('table', 'machines');
            const head = el('thead');
            const tr = el('tr');
            for (const [text, cls] of [['Machine', ''], ['State', ''], ['CPU %', 'num'], ['Memory', 'num'], ['Actions', '']]) {
              tr.appendChild(el('th', cls, text));
            }
            head.appendChild(tr);
            const body = el('tbody');
            table.append(head, body);
            wrap.appendChild(table);
            const restoreView = el('details', 'restore');
            const restoreSummary = el('summary', null, 'Last restore: none yet');
            const restoreTable = el('table', 'restore-outcomes');
            const rhead = el('thead');
            const rtr = el('tr');
            for (const text of ['Machine', 'Desired', 'Found', 'Action', 'Attempts', 'Time', '']) rtr.appendChild(el('th', null, text));
            rhead.appendChild(rtr);
            const rbody = el('tbody');
            restoreTable.append(rhead, rbody);
            restoreView.append(restoreSummary, restoreTable);
            section.append(header, wrap, restoreView);
            return {
              id: info.id, section, status, reason, meta, body, rows: new Map(), machines: new Map(),
              restoreSummary, restoreBody: rbody, info,
            };
          }

          function updateHost(info) {
            const h = S.hosts.get(info.id);
            if (!h) return;
            h.info = info;
            const up = info.status === 'up';
            h.section.className = 'host ' + (up ? 'up' : 'down');
            h.status.textContent = up ? 'up' : 'down';
            h.status.className = 'badge status ' + (up ? 'up' : 'down');
            h.reason.textContent = up ? '' : info.reason;
            const parts = [];
            if (info.run) parts.push('run ' + info.run.slice(0, 8));
            if (info.libvirt) parts.push('libvirt ' + info.libvirt);
            if (!info.synced) parts.push('catching up…');
            if (info.lost) parts.push(info.lost + ' messages lost');
            h.meta.textContent = parts.join(' · ');
            h.meta.title = 'control ' + info.control + ', events ' + info.events + (info.run ? ', run ' + info.run : '');
          }

          function setMachines(h, machines) {
            const seen = new Set();
            for (const m of machines) { upsertMachine(h, m, true); seen.add(m.uuid); }
            for (const [uuid, row] of h.rows) {
              if (!seen.has(uuid)) { row.remove(); h.rows.delete(uuid); h.machines.delete(uuid); }
            }
            // Keep the rows in name order.
            const ordered = Array.from(h.machines.values()).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
            let previous = null;
            for (const m of ordered) {
              const row = h.rows.get(m.uuid);
              const expected = previous ? previous.nextSibling : h.body.firstChild;
              if (row !== expected) h.body.insertBefore(row, expected);
              previous = row;
            }
          }

          function upsertMachine(h, m, bulk) {
            let row = h.rows.get(m.uuid);
            if (!row) {
              row = makeRow(h, m);
              h.rows.set(m.uuid, row);
              if (!bulk) {
                // Insert in name order.
                let before = null;
                for (const other of h.body.children) {
                  const om = h.machines.get(other.getAttribute('data-uuid'));
                  if (om && om.name > m.name) { before = other; break; }
                }
                h.body.insertBefore(row, before);
              } else {
                h.body.appendChild(row);
              }
            }
            h.machines.set(m.uuid, m);
            const cells = row.cells;
            cells[0].textContent = m.name;
            const state = m.undefined ? 'undefined' : (m.state || 'unknown');
            const badge = cells[1].firstChild;
            badge.textContent = state;
            badge.className = 'state ' + (/^[a-z]+$/.test(state) ? state : 'unknown');
            badge.title = m.event ? 'last event: ' + m.event : '';
            cells[2].textContent = typeof m.cpu_percent === 'number' ? m.cpu_percent.toFixed(1) : '–';
            cells[3].textContent = typeof m.memory_kib === 'number'
              ? kib(m.memory_kib) + (typeof m.max_memory_kib === 'number' ? ' / ' + kib(m.max_memory_kib) : '')
              : '–';
            row.setAttribute('data-state', state);
            applyFilter(row, m);
          }

          function makeRow(h, m) {
            const row = el('tr', 'machine');
            row.setAttribute('data-uuid', m.uuid);
            row.appendChild(el('td', 'name'));
            const stateCell = el('td', 'state-cell');
            stateCell.appendChild(el('span', 'state'));
            row.appendChild(stateCell);
            row.appendChild(el('td', 'num cpu'));
            row.appendChild(el('td', 'num memory'));
            const actions = el('td', 'actions');
            for (const [action, label, cls] of ACTIONS) {
              const b = el('button', cls, label);
              b.type = 'button';
              b.setAttribute('data-action', action);
              b.addEventListener('click', () => machineAction(h.id, m.uuid, action, row));
              actions.appendChild(b);
            }
            row.appendChild(actions);
            return row;
          }

          function applyFilter(row, m) {
            const hide = S.filter !== '' && !m.name.toLowerCase().includes(S.filter);
            row.classList.toggle('hidden', hide);
          }

          // MARK: restore

          function renderRestore(h, r) {
            clear(h.restoreBody);
            if (!r || (!r.summary && r.outcomes.length === 0)) {
              h.restoreSummary.textContent = 'Last restore: none yet';
              return;
            }
            let text = 'Last restore';
            if (r.trigger) text += ' (' + r.trigger + ')';
            if (r.in_progress) {
              text += ': under way, ' + r.outcomes.length + ' machines so far';
            } else if (r.summary) {
              const c = r.summary.counts || {};
              const parts = [];
              for (const k of ['started', 'resumed', 'already_running', 'skipped', 'missing', 'failed']) {
                if (c[k]) parts.push(c[k] + ' ' + k.replace('_', ' '));
              }
              text += ': ' + (parts.length ? parts.join(', ') : 'nothing to do');
              if (typeof r.summary.duration_ms === 'number') text += ' in ' + Math.round(r.summary.duration_ms) + ' ms';
              if (r.summary.ts) text += ' at ' + timeOf(r.summary.ts);
            }
            h.restoreSummary.textContent = text;
            for (const o of r.outcomes) {
              const tr = el('tr');
              tr.appendChild(el('td', 'name', o.machine));
              tr.appendChild(el('td', null, o.desired));
              tr.appendChild(el('td', null, o.found === undefined ? '–' : display(o.found)));
              tr.appendChild(el('td', 'action-' + (/^[a-z_]+$/.test(o.action) ? o.action : 'x'), o.action));
              tr.appendChild(el('td', 'num', o.attempts === undefined ? '' : o.attempts));
              tr.appendChild(el('td', 'num', typeof o.duration_ms === 'number' ? Math.round(o.duration_ms) + ' ms' : ''));
              const cell = el('td');
              if (o.error) {
                const b = el('button', null, 'Details');
                b.type = 'button';
                b.addEventListener('click', () => openDialog(o.error, { op: 'restore', machine: o.machine, host: h.id }));
                cell.appendChild(b);
              }
              tr.appendChild(cell);
              h.restoreBody.appendChild(tr);
            }
          }

          // MARK: errors

          function errorKey(e) { return e.host + '/' + e.run + '/' + e.seq; }

          function replaceErrors(host, errors) {
            const keep = S.errors.filter((e) => e.host !== host);
            S.errors = [];
            clear(document.querySelector('#errors tbody'));
            const all = keep.concat(errors).sort((a, b) => String(a.ts).localeCompare(String(b.ts)));
            for (const e of all) addError(e, false);
            updateErrorCount();
          }

          function addError(e, live) {
            const key = errorKey(e);
            if (S.errors.some((x) => errorKey(x) === key)) return;
            S.errors.push(e);
            if (S.errors.length > 2000) S.errors.shift();
            const tr = el('tr', 'error');
            tr.setAttribute('data-error', key);
            tr.appendChild(el('td', null, timeOf(e.ts)));
            tr.appendChild(el('td', null, e.host));
            tr.appendChild(el('td', null, e.op === null ? '' : display(e.op)));
            tr.appendChild(el('td', 'name', e.machine === null ? '' : display(e.machine)));
            tr.appendChild(el('td', 'summary', e.summary));
            const cell = el('td');
            const b = el('button', null, 'Open');
            b.type = 'button';
            b.addEventListener('click', () => openDialog(e.record, { host: e.host, op: e.op, machine: e.machine, id: e.id }));
            cell.appendChild(b);
            tr.appendChild(cell);
            const body = document.querySelector('#errors tbody');
            body.insertBefore(tr, body.firstChild);
            while (body.children.length > 500) body.removeChild(body.lastChild);
            if (live) updateErrorCount();
          }

          function updateErrorCount() {
            document.getElementById('error-count').textContent = String(S.errors.length);
          }

          // MARK: commands

          async function post(url) {
            let response;
            try {
              response = await fetch(url, {
                method: 'POST', credentials: 'same-origin', cache: 'no-store',
                headers: { 'X-CSRF-Token': S.csrf },
              });
            } catch (e) {
              return { ok: false, message: 'the console did not answer' };
            }
            let body = null;
            try { body = await response.json(); } catch (e) { body = null; }
            if (response.status === 202 && body && typeof body.id === 'string') return { ok: true, id: body.id };
            if (response.status === 401) { location.href = '/login'; }
            return { ok: false, message: (body && body.error) ? body.error : 'the console answered ' + response.status };
          }

          async function machineAction(hostID, uuid, action, row) {
            const h = S.hosts.get(hostID);
            const m = h ? h.machines.get(uuid) : null;
            row.classList.add('pending');
            const url = '/api/hosts/' + encodeURIComponent(hostID) + '/machines/' + encodeURIComponent(uuid) + '/' + action;
            const r = await post(url);
            if (!r.ok) {
              row.classList.remove('pending');
              openDialog({ type: 'console', summary: r.message, layer: 'console' }, { host: hostID, op: action, machine: m ? m.name : uuid });
              return;
            }
            track(r.id, row);
          }

          async function hostAction(hostID, button) {
            button.disabled = true;
            const r = await post('/api/hosts/' + encodeURIComponent(hostID) + '/restore');
            if (!r.ok) {
              button.disabled = false;
              openDialog({ type: 'console', summary: r.message, layer: 'console' }, { host: hostID, op: 'restore' });
              return;
            }
            track(r.id, null, button);
          }

          const waiting = new Map();   // command id -> {row, button}

          function track(id, row, button) {
            waiting.set(id, { row, button });
            const known = S.commands.get(id);
            if (known && known.status !== 'sent') settle(known);
          }

          function onCommand(c) {
            S.commands.set(c.id, c);
            renderCommand(c);
            if (c.status !== 'sent' && waiting.has(c.id)) settle(c);
          }

          function settle(c) {
            const w = waiting.get(c.id);
            waiting.delete(c.id);
            if (w.row) w.row.classList.remove('pending');
            if (w.button) w.button.disabled = false;
            const what = (c.machine ? c.machine + ': ' : c.host + ': ') + c.action;
            if (c.status === 'ok') {
              toast(what + ' — ' + c.summary);
            } else {
              openDialog(commandError(c), { host: c.host, op: c.action, machine: c.machine, id: c.id });
            }
          }

          function commandError(c) {
            if (c.error) return c.error;
            return { type: 'console', summary: c.summary, layer: 'console', retryable: c.status === 'no_reply' || c.status === 'not_sent' };
          }

          function renderCommand(c) {
            const body = document.querySelector('#commands tbody');
            let tr = body.querySelector('tr[data-command="' + CSS.escape(c.id) + '"]');
            if (!tr) {
              tr = el('tr');
              tr.setAttribute('data-command', c.id);
              for (let i = 0; i < 7; i++) tr.appendChild(el('td'));
              body.insertBefore(tr, body.firstChild);
              while (body.children.length > 200) body.removeChild(body.lastChild);
            }
            const cells = tr.cells;
            cells[0].textContent = timeOf(c.submitted_at);
            cells[1].textContent = c.by;
            cells[2].textContent = c.host;
            cells[3].textContent = c.machine === null ? '' : c.machine;
            cells[4].textContent = c.action;
            cells[5].textContent = c.status === 'sent' ? 'waiting…' : c.summary;
            cells[5].className = 'summary outcome-' + (/^[a-z_]+$/.test(c.status) ? c.status : 'x');
            clear(cells[6]);
            if (c.status !== 'ok' && c.status !== 'sent') {
              const b = el('button', null, 'Open');
              b.type = 'button';
              b.addEventListener('click', () => openDialog(commandError(c), { host: c.host, op: c.action, machine: c.machine, id: c.id }));
              cells[6].appendChild(b);
            }
          }

          // MARK: the dialog

          function layerOf(record) {
            if (record.layer) return record.layer;
            if (record.type === 'E2LibvirtError' && typeof record.summary === 'string') {
              const i = record.summary.indexOf(': ');
              if (i > 0) return record.summary.slice(0, i);
              return record.domain_name || 'libvirt';
            }
            if (record.type === 'request_error') return 'worker: request check';
            return 'worker';
          }

          function summaryOf(record) {
            if (typeof record.summary === 'string' && record.summary !== '') return record.summary;
            if (record.type === 'request_error') return 'request refused (' + record.reason + '): ' + record.detail;
            if (typeof record.message === 'string') return record.message;
            return 'the command failed';
          }

          function openDialog(record, context) {
            const dialog = document.getElementById('error-dialog');
            document.getElementById('dialog-summary').textContent = summaryOf(record);
            document.getElementById('dialog-layer').textContent = layerOf(record);
            document.getElementById('dialog-category').textContent =
              record.category ? display(record.category) : (record.reason ? display(record.reason) : '–');
            const retry = document.getElementById('dialog-retry');
            if (record.retryable === true) retry.textContent = 'can help: the same command may succeed later';
            else if (record.retryable === false) retry.textContent = 'will not help: something must change first';
            else retry.textContent = 'unknown';
            const parts = [];
            if (context.op) parts.push(display(context.op));
            if (context.machine) parts.push(display(context.machine));
            if (context.host) parts.push('on ' + context.host);
            if (context.id) parts.push('(id ' + display(context.id) + ')');
            document.getElementById('dialog-command').textContent = parts.join(' ');
            const body = document.querySelector('#dialog-fields tbody');
            clear(body);
            const keys = Object.keys(record);
            const ordered = FIELD_ORDER.filter((k) => keys.includes(k)).concat(keys.filter((k) => !FIELD_ORDER.includes(k)).sort());
            for (const k of ordered) {
              const tr = el('tr');
              tr.setAttribute('data-field', k);
              tr.appendChild(el('td', null, k));
              tr.appendChild(el('td', null, display(record[k])));
              body.appendChild(tr);
            }
            document.getElementById('dialog-details').open = false;
            if (!dialog.open) dialog.showModal();
          }

          function toast(text) {
            const t = el('div', 'toast', text);
            document.getElementById('toasts').appendChild(t);
            setTimeout(() => t.remove(), 5000);
          }

          // MARK: start

          document.addEventListener('DOMContentLoaded', () => {
            document.getElementById('filter').addEventListener('input', (ev) => {
              S.filter = ev.target.value.trim().toLowerCase();
              for (const h of S.hosts.values()) {
                for (const [uuid, row] of h.rows) applyFilter(row, h.machines.get(uuid));
              }
            });
            document.getElementById('logout').addEventListener('click', async () => {
              await fetch('/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': S.csrf } });
              location.href = '/login';
            });
            load();
          });
        })();

        """#
}
