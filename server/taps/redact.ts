/** URLs as they may appear in listings and logs. */

/** A URL without its credentials or query (tokens often ride there). */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    if (u.search) u.search = '?…';
    return u.toString();
  } catch {
    return '';
  }
}

