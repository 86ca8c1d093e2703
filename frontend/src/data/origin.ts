// Same-origin URL check, shared by the page (DataProvider) and the search worker, which imports
// nothing else from here so it stays small.

/**
 * `url` resolved against `base`, or an explanation when it lands on another origin. The page's
 * CSP (a <meta> tag) does not govern its web worker, so the code itself refuses other origins.
 */
export function sameOriginUrl(url: string, base: string, origin: string): { href: string } | { problem: string } {
  let u: URL;
  try {
    u = new URL(url, base);
  } catch {
    return { problem: `"${url}" is not a valid URL` };
  }
  if (u.origin !== origin) return { problem: `"${url}" resolves to ${u.href}, on another origin than this page (${origin}); the explorer loads only from its own origin` };
  return { href: u.href };
}
