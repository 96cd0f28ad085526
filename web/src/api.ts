// The connection to Vigie's API: one gRPC-Web transport for the page, with the bearer token
// (when one was given) on every call.

import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Supervision } from "./gen/vigie/v1/supervision_pb";
import { Alerts } from "./gen/vigie/v1/alerts_pb";
import { Notices } from "./gen/vigie/v1/notices_pb";

const tokenKey = "vigie.token";

/** The token kept in this browser, if any. Storage may be unavailable (private modes). */
export function storedToken(): string | undefined {
  try {
    const token = window.localStorage.getItem(tokenKey);
    return token === null || token === "" ? undefined : token;
  } catch {
    return undefined;
  }
}

export function storeToken(token: string | undefined): void {
  try {
    if (token === undefined) window.localStorage.removeItem(tokenKey);
    else window.localStorage.setItem(tokenKey, token);
  } catch {
    // Without storage the token lasts as long as the page: still usable.
  }
}

export interface Api {
  supervision: Client<typeof Supervision>;
  alerts: Client<typeof Alerts>;
  notices: Client<typeof Notices>;
}

/** Clients for the three services the wallboard reads; `token()` is read at every call. */
export function createApi(baseUrl: string, token: () => string | undefined): Api {
  const bearer: Interceptor = (next) => async (request) => {
    const current = token();
    if (current !== undefined) request.header.set("authorization", `Bearer ${current}`);
    return await next(request);
  };
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [bearer] });
  return {
    supervision: createClient(Supervision, transport),
    alerts: createClient(Alerts, transport),
    notices: createClient(Notices, transport),
  };
}
