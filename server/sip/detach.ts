/**
 * Strings that outlive the message they were read from. V8 makes a substring of 13 or more
 * characters a view of its parent (a sliced string), and a `+` or template result a tree of
 * its parts (a cons string): a header value kept in a binding, or a transaction key kept for
 * Timer J, would keep the whole message text alive (~500 bytes per REGISTER, moved by every
 * garbage collection while it lives). Pure.
 */

/** Below this length V8 copies substrings instead of slicing them (SlicedString::kMinLength). */
const SLICE_MIN = 13;

/** The same text in a flat string of its own (~0.1 µs), holding nothing else alive. */
export function detach(s: string): string {
  if (s.length < SLICE_MIN) return s;
  // a new cons string of two short parts; reading a character of it flattens it, copying the
  // characters into one new string (the cons that points at it is then dropped by the GC)
  const c = s.slice(0, 1) + s.slice(1);
  return c.charCodeAt(c.length - 1) >= 0 ? c : s;
}
