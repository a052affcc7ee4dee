/**
 * Path routes (deep links: the hub answers every app path with the app, hub/src/web/plugin.ts):
 *   /                      the fleet (filters in the query: ?q=&presence=&model=&label=&sort=&desc=1)
 *   /devices/:id           a device (?range=live|15m|1h|24h|7d, or ?from=&to= for a custom range)
 *   /login                 log in
 */
export type Route =
  | { name: 'fleet'; params: URLSearchParams }
  | { name: 'device'; id: string; params: URLSearchParams }
  | { name: 'login'; params: URLSearchParams }
  | { name: 'not-found'; path: string; params: URLSearchParams };

export function parseRoute(pathname: string, search: string): Route {
  const params = new URLSearchParams(search);
  if (pathname === '/' || pathname === '') return { name: 'fleet', params };
  if (pathname === '/login') return { name: 'login', params };
  const m = /^\/devices\/([^/]+)\/?$/.exec(pathname);
  if (m) {
    try {
      return { name: 'device', id: decodeURIComponent(m[1]!), params };
    } catch {
      return { name: 'not-found', path: pathname, params };
    }
  }
  return { name: 'not-found', path: pathname, params };
}

export function devicePath(id: string, params?: URLSearchParams): string {
  const q = params && [...params.keys()].length > 0 ? `?${params}` : '';
  return `/devices/${encodeURIComponent(id)}${q}`;
}
