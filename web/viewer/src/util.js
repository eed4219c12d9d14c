// Small DOM and API helpers for the workstation.

export const $ = (sel, from = document) => from.querySelector(sel);

/** Creates an element with attributes (strings; `false`/`null` left out) and children. */
export function el(tag, attrs = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

/** Writes a message into a live region (screen readers announce it). */
export function say(region, text) {
  if (region) region.textContent = text;
}

export const fmtMm = (x) => (Number.isFinite(x) ? `${(Math.round(x * 10) / 10).toFixed(1)} mm` : '–');

/** A call to corelab (same origin, the session cookie). Errors carry corelab's message. */
export async function api(method, url, body, accept = 'application/json') {
  const headers = { Accept: accept };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(url, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 204) return null;
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!r.ok) {
    const err = new Error(data?.error?.message || `corelab answered ${r.status}`);
    err.status = r.status;
    err.field = data?.error?.field;
    throw err;
  }
  return data;
}
