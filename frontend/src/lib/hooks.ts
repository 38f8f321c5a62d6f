// Loading state for API calls: one-shot loads and cursor-paged lists with infinite scroll.
import { useCallback, useEffect, useRef, useState } from "react";

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
  set: (data: T) => void;
}

export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true, error: undefined }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (error: unknown) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
    // The caller lists what the load depends on; `load` itself is a new closure every render.
  }, [...deps, tick]);
  return {
    data: state.data,
    error: state.error,
    loading: state.loading,
    reload: useCallback(() => setTick((t) => t + 1), []),
    set: useCallback((data: T) => setState({ data, loading: false }), []),
  };
}

export interface PageOf<T> {
  data: T[];
  next_cursor?: string | null;
  has_more: boolean;
}

export interface Paged<T> {
  items: T[];
  error: unknown;
  loading: boolean;
  hasMore: boolean;
  more: () => void;
  /** Attach to an element at the end of the list: reaching it loads the next page. */
  sentinel: (element: Element | null) => void;
  replace: (update: (items: T[]) => T[]) => void;
}

export function usePaged<T>(load: (cursor?: string) => Promise<PageOf<T>>, deps: unknown[]): Paged<T> {
  const [items, setItems] = useState<T[]>([]);
  const [cursor, setCursor] = useState<string | undefined>();
  const [hasMore, setHasMore] = useState(true);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<unknown>();
  const generation = useRef(0);
  const busy = useRef(false);

  const fetchPage = useCallback(
    (from: string | undefined, reset: boolean) => {
      const mine = ++generation.current;
      busy.current = true;
      setLoading(true);
      setError(undefined);
      load(from).then(
        (page) => {
          if (mine !== generation.current) return;
          setItems((old) => (reset ? page.data : [...old, ...page.data]));
          setCursor(page.next_cursor ?? undefined);
          setHasMore(page.has_more);
          setLoading(false);
          busy.current = false;
        },
        (e: unknown) => {
          if (mine !== generation.current) return;
          setError(e);
          setLoading(false);
          busy.current = false;
        },
      );
    },
    // `deps` are what the pages depend on; `load` is a new closure every render.
    deps,
  );

  useEffect(() => {
    setItems([]);
    setHasMore(true);
    fetchPage(undefined, true);
  }, [fetchPage]);

  // Without a cursor no page has arrived yet (the first one failed): try the first page again.
  const more = useCallback(() => {
    if (!busy.current && hasMore) fetchPage(cursor, cursor === undefined);
  }, [cursor, hasMore, fetchPage]);

  const observer = useRef<IntersectionObserver | null>(null);
  const moreRef = useRef(more);
  moreRef.current = more;
  const watched = useRef<Element | null>(null);
  const sentinel = useCallback((element: Element | null) => {
    observer.current?.disconnect();
    watched.current = element;
    if (!element) return;
    observer.current = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) moreRef.current();
    }, { rootMargin: "400px" });
    observer.current.observe(element);
  }, []);

  // Observing again reports the current intersection: a page too short to fill the screen
  // leaves the sentinel in view, and the next page must still come.
  useEffect(() => {
    const element = watched.current;
    if (!loading && element && observer.current) {
      observer.current.unobserve(element);
      observer.current.observe(element);
    }
  }, [loading, items.length]);

  return { items, error, loading, hasMore, more, sentinel, replace: (update) => setItems(update) };
}

/** An update for `Paged.replace`: the item with `next`'s id becomes `next`. */
export function replaceById<T extends { id: string }>(next: T): (items: T[]) => T[] {
  return (items) => items.map((item) => (item.id === next.id ? next : item));
}

/** Re-renders when the session changes (sign in, refresh, sign out). */
export function useSubscription(subscribe: (listener: () => void) => () => void): number {
  const [version, setVersion] = useState(0);
  useEffect(() => subscribe(() => setVersion((v) => v + 1)), [subscribe]);
  return version;
}

/** A form's submit: runs `action`, with `busy` while it runs and the error it threw, if any. */
export function useAction<A extends unknown[]>(action: (...args: A) => Promise<void>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const run = async (...args: A) => {
    setBusy(true);
    setError(undefined);
    try {
      await action(...args);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return { run, busy, error };
}
