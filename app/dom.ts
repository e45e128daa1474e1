/** Small DOM helpers of the page. */

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

export function notice(el: HTMLElement, kind: 'warn' | 'info', text: string): void {
  el.innerHTML = '';
  const div = document.createElement('div');
  div.className = `notice ${kind}`;
  div.textContent = text;
  el.append(div);
}

export function step(id: string, status: 'active' | 'done', detail = ''): void {
  $(`s-${id}`).className = status;
  $(`s-${id}-d`).textContent = detail;
}
