/*
 * The demo pages' script: connection status, the live item list, the tracker.
 *
 * Uses the public Telegraphy client API only: Telegraphy.on('connect'|'disconnect'|'recovery'),
 * Telegraphy.register(topic, fn) and Telegraphy.subscribe(topic).onCreate(...).
 * Text from events is always inserted with textContent, never as HTML.
 */
(function (window, document) {
  'use strict';

  var TOPIC = 'demo.MyModel';

  function setStatus(state) {
    var element = document.getElementById('telegraphy-status');
    if (element) {
      element.textContent = state;
      element.setAttribute('data-state', state);
    }
  }

  function watchConnection() {
    setStatus(window.Telegraphy.state === 'connected' ? 'connected' : 'disconnected');
    window.Telegraphy.on('connect', function () { setStatus('connected'); });
    window.Telegraphy.on('disconnect', function () { setStatus('disconnected'); });
    // After a reconnect the gateway replays what was missed; when it cannot
    // (history trimmed, gateway store reset) the page says so.
    window.Telegraphy.on('recovery', function (info) {
      var notice = document.getElementById('telegraphy-recovery');
      if (notice && !info.recovered) {
        notice.textContent = 'Some changes to ' + info.topic + ' were missed while disconnected (' +
          (info.reason || 'unknown reason') + '): reload the page to see them.';
        notice.hidden = false;
      }
    });
  }

  // Send a form with fetch(); the list changes when the event arrives. Without a
  // gateway connection nothing would arrive, so the page reloads instead.
  function submitWithFetch(form) {
    var body = new FormData(form);
    return window.fetch(form.action, {
      method: 'POST',
      body: body,
      headers: {'X-Requested-With': 'fetch'},
      credentials: 'same-origin'
    }).then(function (response) {
      if (!response.ok) {
        return response.json().then(function (answer) {
          window.alert('Not saved: ' + JSON.stringify(answer.errors || answer));
        });
      }
      if (form.id === 'create-form') {
        form.reset();
      }
      if (window.Telegraphy.state !== 'connected') {
        window.location.reload();
      }
      return null;
    });
  }

  function interceptForms(root) {
    root.addEventListener('submit', function (event) {
      var form = event.target;
      if (form.hasAttribute && form.hasAttribute('data-ajax') && window.fetch) {
        event.preventDefault();
        submitWithFetch(form);
      }
    });
  }

  function text(row, selector, value) {
    var element = row.querySelector(selector);
    if (element) {
      element.textContent = value === null || value === undefined ? '' : String(value);
    }
  }

  function value(row, selector, fieldValue) {
    var input = row.querySelector(selector);
    // Leave an input alone while someone types in it.
    if (input && document.activeElement !== input) {
      input.value = fieldValue === null || fieldValue === undefined ? '' : String(fieldValue);
    }
  }

  function startList(options) {
    var list = document.getElementById('items');
    var empty = document.getElementById('items-empty');
    var template = document.getElementById('item-template');

    function refreshEmpty() {
      empty.hidden = list.children.length > 0;
    }

    function fill(row, data) {
      text(row, '.item-title', data.title);
      text(row, '.item-description', data.description);
      text(row, '.item-count', data.count);
      value(row, '.edit-title', data.title);
      value(row, '.edit-description', data.description);
      value(row, '.edit-count', data.count);
    }

    function addRow(data) {
      var row = template.content.firstElementChild.cloneNode(true);
      row.id = 'item-' + data.pk;
      row.setAttribute('data-pk', String(data.pk));
      row.querySelector('form.item-update').action = options.updateUrl.replace('/0/', '/' + data.pk + '/');
      row.querySelector('form.item-delete').action = options.deleteUrl.replace('/0/', '/' + data.pk + '/');
      fill(row, data);
      list.appendChild(row);
      return row;
    }

    window.Telegraphy.register(TOPIC, function (event) {
      var data = event.data || {};
      var row = document.getElementById('item-' + data.pk);
      var type = event.meta && event.meta.event_type;
      if (type === 'delete') {
        if (row) {
          row.parentNode.removeChild(row);
        }
      } else if (row) {
        fill(row, data);
      } else {
        addRow(data);
      }
      refreshEmpty();
    });
    interceptForms(document);
  }

  function startTracker() {
    var entries = document.getElementById('tracker-entries');
    var empty = document.getElementById('tracker-empty');

    function log(event) {
      var data = event.data || {};
      var type = (event.meta && event.meta.event_type) || '';
      var row = document.createElement('tr');
      row.className = 'tracker-entry tracker-' + type;
      row.setAttribute('data-testid', 'tracker-entry');
      row.setAttribute('data-event-type', type);
      row.setAttribute('data-pk', String(data.pk));
      [
        (event.meta && event.meta.timestamp) || '',
        type,
        data.pk,
        data.title,
        data.count
      ].forEach(function (cell) {
        var td = document.createElement('td');
        td.textContent = cell === null || cell === undefined ? '' : String(cell);
        row.appendChild(td);
      });
      entries.insertBefore(row, entries.firstChild);
      empty.hidden = true;
    }

    window.Telegraphy.subscribe(TOPIC).onCreate(log).onUpdate(log).onDelete(log);
  }

  watchConnection();
  window.TelegraphyDemo = {startList: startList, startTracker: startTracker};
}(window, document));
