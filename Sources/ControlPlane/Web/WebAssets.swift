/// The page's stylesheet and its one script, served by `serve` itself (`/assets/…`): the page works on a machine with
/// no internet, and the Content-Security-Policy allows scripts and styles from this origin only.
enum WebAssets {
    static let stylesheet = #"""
        :root { --fg: #17202a; --muted: #5d6d7e; --bg: #ffffff; --panel: #f4f6f8; --line: #d5dbe1; --accent: #0b57d0;
          --spend: #0b57d0; --fal: #d9822b; --ok: #137333; --bad: #b3261e; --focus: #ffbf47;
          font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
        * { box-sizing: border-box; }
        body { margin: 0; line-height: 1.45; font-size: 16px; }
        a { color: var(--accent); }
        :focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; box-shadow: 0 0 0 5px var(--fg); }
        .skip { position: absolute; left: -999px; top: 0; background: var(--bg); padding: .5rem; z-index: 2; }
        .skip:focus { left: .5rem; }
        header { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem; padding: .6rem 1rem; background: var(--fg); color: #fff; }
        header a { color: #fff; }
        .brand { font-weight: 700; }
        nav { display: flex; flex-wrap: wrap; gap: .25rem .9rem; }
        nav a { padding: .2rem .1rem; text-decoration: none; border-bottom: 2px solid transparent; }
        nav a[aria-current="page"] { border-bottom-color: #fff; font-weight: 600; }
        header form { margin: 0; }
        .signout { margin-left: auto; }
        .open-note { margin-left: auto; font-size: .85rem; opacity: .85; }
        main { padding: 1rem; max-width: 1400px; margin: 0 auto; }
        main:focus { outline: none; }
        h1 { font-size: 1.5rem; margin: .2rem 0 1rem; overflow-wrap: anywhere; }
        h2 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
        .live { margin: 0; padding: 0 1rem; font-size: .8rem; color: var(--muted); min-height: 1.2em; }
        .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(10.5rem, 1fr)); gap: .75rem; margin-bottom: 1rem; }
        .card { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .6rem .8rem; }
        .card h2 { margin: 0; font-size: .85rem; color: var(--muted); font-weight: 600; }
        .card.wide { grid-column: span 2; }
        .big { font-size: 1.6rem; margin: .2rem 0 0; font-variant-numeric: tabular-nums; }
        table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-variant-numeric: tabular-nums; }
        caption { text-align: left; font-weight: 600; padding: .3rem 0; }
        th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        thead th { background: var(--panel); }
        td.num { text-align: right; }
        .table-wrap { overflow-x: auto; max-width: 100%; }
        .prompt { max-width: 28rem; overflow-wrap: anywhere; }
        .muted, .hint { color: var(--muted); font-size: .85rem; }
        .status { font-weight: 600; }
        .status-completed { color: var(--ok); }
        .status-failed, .status-timed_out, .status-cancelled { color: var(--bad); }
        .error { color: var(--bad); white-space: pre-wrap; }
        .note, .notice { background: var(--panel); border-left: 4px solid var(--accent); padding: .5rem .75rem; }
        pre { background: var(--panel); padding: .6rem; overflow: auto; max-height: 28rem; white-space: pre-wrap; overflow-wrap: anywhere; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0 0 1rem; }
        dl.facts dt { color: var(--muted); }
        dl.facts dd { margin: 0; overflow-wrap: anywhere; }
        form.filters, .actions { display: flex; flex-wrap: wrap; align-items: center; gap: .4rem .6rem; margin-bottom: .8rem; }
        .actions form { display: flex; flex-wrap: wrap; align-items: center; gap: .4rem; margin: 0; }
        input, select, button { font: inherit; padding: .35rem .5rem; border: 1px solid var(--muted); border-radius: 4px; background: #fff; color: var(--fg); }
        button { cursor: pointer; background: var(--panel); }
        button.danger { background: var(--bad); color: #fff; border-color: var(--bad); }
        header button { background: transparent; color: #fff; border-color: #fff; }
        progress { width: 8rem; max-width: 100%; height: 1rem; vertical-align: middle; }
        video, img { max-width: 100%; height: auto; display: block; background: #000; }
        figure { margin: 0 0 1rem; }
        .costs { display: grid; grid-template-columns: 1fr; gap: 1rem; }
        @media (min-width: 1000px) { .costs { grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); align-items: start; } }
        .cost-chart { width: 100%; height: auto; }
        .cost-chart .grid { stroke: var(--line); stroke-width: 1; }
        .cost-chart .axis { font-size: 11px; fill: var(--muted); }
        .bar-spend { fill: var(--spend); }
        .bar-fal { fill: var(--fal); }
        .signin { max-width: 28rem; }
        .signin form { display: grid; gap: .5rem; }
        @media (max-width: 600px) { main { padding: .6rem; } .card.wide { grid-column: span 1; } th, td { padding: .3rem; } }
        """#

    /// Applies the server's events (`/events`) to the page: job statuses, queue counts, workers' stages and download
    /// progress. Values only ever go into `textContent` or a progress bar's value, never into markup.
    static let script = #"""
        'use strict';
        (function () {
          const body = document.body;
          if (!('live' in body.dataset) || !window.EventSource) return;
          const live = document.getElementById('live');
          const detail = document.querySelector('[data-job-page]');
          const params = new URLSearchParams({ endpoint: body.dataset.endpoint || '' });
          if (detail) params.set('job', detail.dataset.jobPage);
          const each = function (attribute, id, apply) {
            let found = false;
            document.querySelectorAll('[' + attribute + ']').forEach(function (element) {
              if (element.getAttribute(attribute) === id) { found = true; apply(element); }
            });
            return found;
          };
          const setStatus = function (element, status) {
            if (element.textContent === status) return;
            element.textContent = status;
            element.className = 'status status-' + status.toLowerCase();
          };
          const addRow = function (job) {
            const table = document.querySelector('tbody[data-live-jobs]');
            if (!table) return;
            const row = document.createElement('tr');
            row.setAttribute('data-job-row', job.id);
            const link = document.createElement('a');
            link.href = '/jobs/' + encodeURIComponent(job.id);
            link.textContent = job.id;
            const status = document.createElement('span');
            status.setAttribute('data-job-status', job.id);
            setStatus(status, job.status);
            const cells = [link, status, job.provider || '—', job.created || '', job.execution || '—', job.prompt || ''];
            cells.forEach(function (content, index) {
              const cell = document.createElement('td');
              if (typeof content === 'string') cell.textContent = content; else cell.appendChild(content);
              if (index === 5) cell.className = 'prompt';
              row.appendChild(cell);
            });
            table.insertBefore(row, table.firstChild);
          };
          // The first events describe the page as it was rendered; rows are added only for jobs that come later.
          let primed = false;
          let refreshed = false;
          const refreshDetail = function () {
            if (refreshed) return;
            refreshed = true;
            fetch(window.location.href, { credentials: 'same-origin' })
              .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
              .then(function (text) {
                const fresh = new DOMParser().parseFromString(text, 'text/html').getElementById('job-detail');
                if (fresh) detail.replaceWith(document.importNode(fresh, true));
              })
              .catch(function () { refreshed = false; });
          };
          const source = new EventSource('/events?' + params.toString());
          // HTTP/1.1 gives a browser six connections to a server: a page left behind must give its stream back.
          window.addEventListener('pagehide', function () { source.close(); });
          window.addEventListener('pageshow', function (event) { if (event.persisted) window.location.reload(); });
          source.addEventListener('open', function () { live.textContent = 'Live updates on.'; });
          source.addEventListener('error', function () { live.textContent = 'Live updates paused; reconnecting…'; });
          source.addEventListener('job', function (event) {
            const job = JSON.parse(event.data);
            const known = each('data-job-status', job.id, function (element) { setStatus(element, job.status); });
            if (!known && !job.watched && primed) addRow(job);
            if (detail && job.id === detail.dataset.jobPage && job.final) refreshDetail();
          });
          source.addEventListener('counts', function (event) {
            const counts = JSON.parse(event.data);
            primed = true;
            Object.keys(counts).forEach(function (status) {
              each('data-count', status, function (element) { element.textContent = String(counts[status]); });
            });
          });
          source.addEventListener('worker', function (event) {
            const worker = JSON.parse(event.data);
            each('data-stage', worker.id, function (element) { element.textContent = worker.stage; });
            // A downloading worker's ping without a figure (its total not known yet) keeps the bar where it was.
            const keep = worker.percent === null && worker.stage === 'DOWNLOADING';
            each('data-progress', worker.id, function (element) {
              if (!keep) { element.value = worker.percent === null ? 0 : worker.percent; }
            });
            each('data-percent', worker.id, function (element) {
              if (!keep) { element.textContent = worker.percent === null ? '—' : worker.percent.toFixed(1) + '%'; }
            });
          });
        })();
        """#
}
