/**
 * The page the browser test (test/e2e/browser.e2e-spec.ts) loads from a second origin: the flow
 * the README's "Browsers" section describes, in plain browser JavaScript. `start()` fetches a
 * ticket for each SSE path and opens an EventSource with it; when a stream drops, it closes it
 * (the ticket is spent, so EventSource's own retry would be refused) and opens it again with a
 * fresh ticket, the stream tail with `from=` the last entry id it saw. Everything it sees goes
 * to `window.seen` for the test to read. `window.hold` delays the reconnects while it is true.
 */
export const PAGE_HTML = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>redis-gateway browser test</title></head>
<body>
<script>
window.seen = {
  channel: [], entries: [], opens: { channel: 0, stream: 0 }, drops: { channel: 0, stream: 0 },
  tickets: [], urls: [], errors: [], other: [],
};
window.hold = false;

async function ticket(base, token, path) {
  const response = await fetch(base + '/redis/tickets', {
    method: 'POST',
    headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' },
    body: JSON.stringify({ path }),
  });
  const body = await response.json();
  window.seen.tickets.push({
    status: response.status,
    requestId: response.headers.get('x-request-id'),
    path,
  });
  if (!response.ok) {
    throw new Error('ticket refused: ' + response.status + ' ' + body.code);
  }
  return body.ticket;
}

function follow(base, token, kind, path, query, events, onEvent) {
  const again = () => {
    if (window.hold) {
      setTimeout(again, 50);
    } else {
      follow(base, token, kind, path, query, events, onEvent);
    }
  };
  ticket(base, token, path).then(
    (value) => {
      const url = base + path + '?ticket=' + encodeURIComponent(value) + query();
      window.seen.urls.push(url.replace(value, '<ticket>'));
      const source = new EventSource(url);
      source.onopen = () => window.seen.opens[kind]++;
      for (const name of events) {
        // A dropped connection fires a plain 'error' Event too; the gateway's are messages.
        source.addEventListener(name, (event) => event instanceof MessageEvent && onEvent(name, event));
      }
      source.onerror = () => {
        source.close();
        window.seen.drops[kind]++;
        setTimeout(again, 200);
      };
    },
    (error) => {
      window.seen.errors.push(String(error));
      setTimeout(again, 500);
    },
  );
}

window.start = ({ base, token, channel, stream }) => {
  let last = '0';
  follow(
    base, token, 'channel', '/redis/pubsub/channels/' + encodeURIComponent(channel) + '/events',
    () => '', ['message', 'error', 'expired', 'shutdown'],
    (name, event) => name === 'message'
      ? window.seen.channel.push(JSON.parse(event.data).message)
      : window.seen.other.push(name),
  );
  follow(
    base, token, 'stream', '/redis/streams/' + encodeURIComponent(stream) + '/events',
    () => '&from=' + encodeURIComponent(last), ['entry', 'gap', 'error', 'expired', 'shutdown'],
    (name, event) => {
      if (name !== 'entry') {
        window.seen.other.push(name);
        return;
      }
      const entry = JSON.parse(event.data);
      last = event.lastEventId;
      window.seen.entries.push({ id: entry.id, lastEventId: event.lastEventId, n: entry.fields.n });
    },
  );
};

/** What a page sees of a call: its status and code, or the TypeError of a blocked response. */
window.probe = async (url, token) => {
  try {
    const response = await fetch(url, { headers: token ? { authorization: 'Bearer ' + token } : {} });
    const body = await response.json();
    return { status: response.status, code: body.code, requestId: response.headers.get('x-request-id') };
  } catch (error) {
    return { blocked: error.name + ': ' + error.message };
  }
};
</script>
</body>
</html>
`;
