/** The current route, reactive; the browser's history as the source of truth (routes.ts has the paths). */
import { parseRoute, type Route } from '../routes.js';

export type { Route };

class Router {
  route: Route = $state(parseRoute(location.pathname, location.search));

  constructor() {
    window.addEventListener('popstate', () => {
      this.route = parseRoute(location.pathname, location.search);
    });
  }

  /** Goes to `path` (pushes a history entry unless `replace`). */
  go(path: string, replace = false): void {
    const url = new URL(path, location.origin);
    if (url.pathname + url.search === location.pathname + location.search) return;
    if (replace) history.replaceState(null, '', url.pathname + url.search);
    else history.pushState(null, '', url.pathname + url.search);
    this.route = parseRoute(url.pathname, url.search);
  }

  /** Changes the query of the current page without a history entry (filters as they are typed). */
  setParams(params: URLSearchParams): void {
    const q = [...params.keys()].length > 0 ? `?${params}` : '';
    history.replaceState(null, '', location.pathname + q);
  }

  /** onclick for in-app links: plain clicks navigate without reloading; modified clicks open as usual. */
  link = (event: MouseEvent): void => {
    const a = (event.currentTarget ?? event.target) as HTMLAnchorElement | null;
    if (
      !a ||
      event.defaultPrevented ||
      event.button !== 0 ||
      event.metaKey ||
      event.ctrlKey ||
      event.shiftKey ||
      event.altKey
    )
      return;
    if (a.target && a.target !== '_self') return;
    event.preventDefault();
    this.go(a.getAttribute('href') ?? '/');
  };
}

export const router = new Router();
