import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { Code, ConnectError } from "@connectrpc/connect";
import { createApi, storedToken, storeToken } from "./api";
import { BoardContext, NowContext, type Board } from "./context";
import { labelsFor } from "./i18n";
import { parseRoute } from "./routes";
import { carriedQuery, readSettings } from "./settings";
import { retryDelay, type AccessProblem } from "./stream";
import { TokenForm } from "./components/TokenForm";
import { QueueBoard } from "./pages/QueueBoard";
import { SiteOverview } from "./pages/SiteOverview";
import { TeamWallboard } from "./pages/TeamWallboard";
import type { SiteSummary } from "./gen/vigie/v1/supervision_pb";

/** How often clocks on the wall move: fine enough for "updated 0.4 s ago". */
const tickMs = 200;

// The token lives here (and in localStorage); the transport reads it at every call.
let currentToken = storedToken();

export function App() {
  const settings = useMemo(() => readSettings(window.location, navigator.languages ?? [navigator.language]), []);
  const labels = labelsFor(settings.language);
  const api = useMemo(() => createApi(settings.apiBaseUrl, () => currentToken), [settings.apiBaseUrl]);

  const [location, setLocation] = useState({ pathname: window.location.pathname, search: window.location.search });
  const [accessEpoch, setAccessEpoch] = useState(0);
  const [hasToken, setHasToken] = useState(currentToken !== undefined);
  const [accessProblem, setAccessProblem] = useState<AccessProblem | undefined>(undefined);
  const [sites, setSites] = useState<SiteSummary[] | undefined>(undefined);
  const [sitesError, setSitesError] = useState<ConnectError | undefined>(undefined);
  const [now, setNow] = useState(() => performance.now());

  useEffect(() => {
    document.documentElement.lang = settings.language;
  }, [settings.language]);

  useEffect(() => {
    const timer = setInterval(() => setNow(performance.now()), tickMs);
    return () => clearInterval(timer);
  }, []);

  useEffect(() => {
    const onPopState = () => setLocation({ pathname: window.location.pathname, search: window.location.search });
    window.addEventListener("popstate", onPopState);
    return () => window.removeEventListener("popstate", onPopState);
  }, []);

  const onAccessProblem = useCallback((problem: AccessProblem) => setAccessProblem(problem), []);

  const changeToken = useCallback((token: string | undefined) => {
    currentToken = token;
    storeToken(token);
    setHasToken(token !== undefined);
    setAccessProblem(undefined);
    setAccessEpoch((epoch) => epoch + 1);
  }, []);

  // The list of sites: the default site when `?site=` is absent, and each site's name and
  // time zone. Asked again with backoff until it answers; a refused token stops it.
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const attempt = async (failures: number) => {
      try {
        const response = await api.supervision.listSites({}, { signal: controller.signal });
        setSites(response.sites);
        setSitesError(undefined);
      } catch (error) {
        if (controller.signal.aborted) return;
        const failure = ConnectError.from(error);
        setSitesError(failure);
        if (
          failure.code === Code.Unauthenticated ||
          (failure.code === Code.PermissionDenied && currentToken !== undefined)
        ) {
          onAccessProblem({
            kind: failure.code === Code.Unauthenticated ? "unauthenticated" : "denied",
            message: failure.rawMessage,
          });
          return;
        }
        timer = setTimeout(() => void attempt(failures + 1), retryDelay(failures));
      }
    };
    void attempt(0);
    return () => {
      controller.abort();
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [api, accessEpoch, onAccessProblem]);

  const site = settings.requestedSite ?? sites?.[0]?.site;
  const summary = sites?.find((candidate) => candidate.site === site);
  const route = parseRoute(location.pathname);

  const board: Board | undefined =
    site === undefined
      ? undefined
      : {
          api,
          labels,
          language: settings.language,
          site,
          siteName: summary?.name,
          timeZone: summary?.timeZone || undefined,
          accessEpoch,
          hasToken,
          onAccessProblem,
          href: (path) => `${path}${carriedQuery(location.search)}`,
          navigate: (href) => {
            window.history.pushState(null, "", href);
            setLocation({ pathname: window.location.pathname, search: window.location.search });
          },
        };

  let page;
  if (board === undefined) {
    page = (
      <main class="board board-waiting">
        <p class="waiting-note">
          {sites !== undefined && sites.length === 0
            ? labels.noSite
            : sitesError !== undefined
              ? `${labels.error}: ${sitesError.rawMessage}`
              : labels.waiting}
        </p>
      </main>
    );
  } else if (route.kind === "team") {
    page = <TeamWallboard key={`team|${route.team}`} team={route.team} />;
  } else if (route.kind === "queue") {
    page = <QueueBoard key={`queue|${route.queue}`} queue={route.queue} />;
  } else if (route.kind === "site") {
    page = <SiteOverview key="site" />;
  } else {
    page = (
      <main class="board board-waiting">
        <p class="waiting-note">
          {labels.notFound}: {location.pathname}
        </p>
      </main>
    );
  }

  return (
    <NowContext.Provider value={now}>
      {board === undefined ? page : <BoardContext.Provider value={board}>{page}</BoardContext.Provider>}
      {hasToken && (
        <button type="button" class="forget-token" data-testid="forget-token" onClick={() => changeToken(undefined)}>
          {labels.forgetToken}
        </button>
      )}
      {accessProblem !== undefined && <TokenForm labels={labels} problem={accessProblem} onToken={changeToken} />}
    </NowContext.Provider>
  );
}
