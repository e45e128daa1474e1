/** The swarm's models as a table (from /api/models); opening one reloads the page on ?model=<id>. */
import { $ } from './dom.ts';
import type { ModelRow } from './page-state.ts';
import { formatBytes } from './views.ts';

export function renderModels(models: ModelRow[]): void {
  const body = $('modelrows');
  body.innerHTML = '';
  if (models.length === 0) body.innerHTML = '<tr><td colspan="6" class="meta">no models in this swarm yet</td></tr>';
  for (const m of models) {
    const tr = document.createElement('tr');
    const params = m.parameters >= 1e9 ? `${(m.parameters / 1e9).toFixed(1)} B` : m.parameters ? `${(m.parameters / 1e6).toFixed(1)} M` : '?';
    for (const text of [m.name || `${m.id.slice(0, 12)}…`, m.architecture || '?', params, m.bytes ? formatBytes(m.bytes) : '?', String(m.peers)]) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    const td = document.createElement('td');
    const b = document.createElement('button');
    b.textContent = 'Open';
    b.onclick = () => navigateTo(m.id);
    td.append(b);
    tr.append(td);
    body.append(tr);
  }
}

export function navigateTo(id: string): void {
  const u = new URL(location.href);
  u.searchParams.set('model', id.trim());
  location.href = u.href;
}
