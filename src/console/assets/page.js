// The console page in the browser: renders the state the launcher pushes
// (src/console/page-state.ts), signs in, shows the guest's screen through
// noVNC over the launcher's websocket, and sends the controls. It holds no
// secret: the cookie is HttpOnly, the passphrase is sent once and cleared.
import RFB from '/novnc/core/rfb.js';
import { provideClipboardAsIs } from './clipboard-to-guest.js';

provideClipboardAsIs(RFB);

const $ = (id) => document.getElementById(id);
let rfb;
let last;
let screenUp = false;

// While the launch goes on the screen may show already (the guest booting
// on it): then the "running" section shows, the controls do not.
function showSection(phase, section = phase) {
  document.body.dataset.phase = phase;
  for (const element of document.querySelectorAll('main > section')) element.hidden = element.id !== section;
  $('controls').hidden = phase !== 'running';
}

// "connected": the running session's screen; "booting": the screen of a guest still starting.
function markScreen() {
  if (screenUp) document.body.dataset.screen = last?.phase === 'running' ? 'connected' : 'booting';
}

function connectScreen() {
  if (rfb) return;
  rfb = new RFB($('screen'), `ws://${location.host}/vnc`);
  rfb.scaleViewport = true;
  rfb.resizeSession = true;
  rfb.focusOnClick = true;
  rfb.addEventListener('connect', () => {
    screenUp = true;
    markScreen();
    rfb.focus();
  });
  rfb.addEventListener('disconnect', () => {
    document.body.dataset.screen = 'disconnected';
    screenUp = false;
    rfb = undefined;
  });
  rfb.addEventListener('clipboard', (event) => {
    $('clipboard').value = event.detail.text;
    document.body.dataset.clipboard = 'received';
    navigator.clipboard?.writeText(event.detail.text).catch(() => {});
  });
}

function render(state) {
  last = state;
  showSection(state.phase, state.phase === 'starting' && state.screen ? 'running' : state.phase);
  if (state.phase === 'sign-in') {
    const select = $('user');
    if (select.options.length !== state.users.length) {
      select.replaceChildren(...state.users.map((name) => new Option(name, name)));
    }
    $('sign-in-error').textContent = state.error ?? '';
  } else if (state.phase === 'starting') {
    $('starting-message').textContent = state.message;
    if (state.screen) {
      $('summary').textContent = state.message;
      connectScreen();
    }
  } else if (state.phase === 'running') {
    $('summary').textContent = `${state.guest}${state.user ? ` · ${state.user}` : ''}`;
    connectScreen();
    markScreen();
    void refreshStatus();
  } else if (state.phase === 'ended') {
    rfb?.disconnect();
    $('summary').textContent = '';
    $('ended-title').textContent =
      {
        removed: 'The stick was pulled out',
        suspended: 'Suspended to the stick',
        ejected: 'Safe to remove the stick',
        stopped: 'The guest has shut down',
        failed: 'The session has ended',
      }[state.reason] ?? 'The session has ended';
    $('ended-message').textContent = state.message;
    document.body.dataset.ended = state.reason;
  }
}

async function refreshStatus() {
  const response = await fetch('/api/status');
  if (!response.ok) return;
  const status = await response.json();
  const lines = [
    `${status.guest}: ${status.state}, up ${status.uptimeSeconds} s`,
    `${status.accelerator}, ${status.memoryMiB} MiB, ${status.cpus} vCPU`,
    ...(status.user ? [`user ${status.user}`] : []),
    ...(status.stickFull ? [status.stickFull.message] : []),
    ...(status.pendingConfirmations ?? []).map((item) => `waiting for confirmation: ${item}`),
  ];
  $('status').textContent = lines.join('\n');
  // Each waiting rule can be confirmed here, with the person's passphrase (as `launcher tables confirm`).
  $('waiting-rules').replaceChildren(
    ...(status.waitingRules ?? []).map((rule) => {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = 'Confirm…';
      button.dataset.rule = rule.id;
      button.addEventListener('click', () => askConfirmation(rule));
      item.append(rule.text, button);
      return item;
    }),
  );
}

let confirming;

function askConfirmation(rule) {
  confirming = rule;
  $('confirm-rule').textContent = `Let the guest see ${rule.text}?`;
  $('confirm-message').textContent = '';
  $('confirm-form').hidden = false;
  $('confirm-passphrase').focus();
}

async function control(action, question) {
  if (question && !window.confirm(question)) return;
  $('control-message').textContent = `${action}…`;
  const response = await fetch(`/api/control?action=${action}`, { method: 'POST' });
  const answer = await response.json().catch(() => ({ ok: false, message: response.statusText }));
  $('control-message').textContent = answer.ok ? '' : answer.message;
}

$('sign-in-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const passphrase = $('passphrase');
  const body = new TextEncoder().encode(passphrase.value);
  passphrase.value = '';
  $('sign-in-error').textContent = 'checking…';
  $('sign-in-button').disabled = true;
  try {
    const response = await fetch(`/api/sign-in?user=${encodeURIComponent($('user').value)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body,
    });
    body.fill(0);
    const answer = await response.json().catch(() => ({ ok: false, message: response.statusText }));
    $('sign-in-error').textContent = answer.ok ? '' : answer.hint ? `${answer.message} (${answer.hint})` : answer.message;
  } finally {
    $('sign-in-button').disabled = false;
  }
});
$('confirm-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (!confirming) return;
  const passphrase = $('confirm-passphrase');
  const body = new TextEncoder().encode(passphrase.value);
  passphrase.value = '';
  $('confirm-message').textContent = 'checking…';
  $('confirm-button').disabled = true;
  try {
    const response = await fetch(`/api/confirm?rule=${encodeURIComponent(confirming.id)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body,
    });
    body.fill(0);
    const answer = await response.json().catch(() => ({ ok: false, message: response.statusText }));
    $('confirm-message').textContent = answer.ok ? answer.message : answer.hint ? `${answer.message} (${answer.hint})` : answer.message;
    document.body.dataset.confirm = answer.ok ? 'confirmed' : 'refused';
    if (answer.ok) {
      $('confirm-form').hidden = true;
      confirming = undefined;
      void refreshStatus();
    }
  } finally {
    $('confirm-button').disabled = false;
  }
});
$('confirm-cancel').addEventListener('click', () => {
  $('confirm-form').hidden = true;
  confirming = undefined;
});
$('clipboard-send').addEventListener('click', () => rfb?.clipboardPasteFrom($('clipboard').value));
$('status-button').addEventListener('click', () => void refreshStatus());
$('shutdown-button').addEventListener('click', () => void control('shutdown', 'Shut the guest down?'));
$('suspend-button').addEventListener('click', () => void control('suspend', 'Save the running guest to the stick and end the session?'));
$('eject-button').addEventListener('click', () => void control('eject', 'Shut the guest down so the stick can be removed?'));

const events = new EventSource('/api/events');
events.addEventListener('message', (event) => render(JSON.parse(event.data)));
// The stream ends with the session: after the last state, or without one
// (the launcher killed): then that is the last state.
events.addEventListener('error', () => {
  events.close();
  if (last?.phase !== 'ended')
    render({ phase: 'ended', reason: 'failed', message: 'The launcher stopped serving this page: the session is over or the launcher was closed.' });
});
