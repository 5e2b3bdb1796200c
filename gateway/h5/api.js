// The gateway's HTTP API as the page uses it. The session is an HttpOnly
// cookie the page never sees; writes carry the session's CSRF token
// (from GET /h5/session), kept in this module's memory only.

let csrfToken = null;

export class ApiError extends Error {
  // `code`, `message`, `retryAfter` (seconds or null) and `queryId` as the
  // CONTRACT's error body gives them; status 0 when the network failed.
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || "服务暂时不可用，请稍后再试。");
    this.status = status;
    this.code = error.code || "UNAVAILABLE";
    this.retryAfter = Number.isInteger(error.retry_after) ? error.retry_after : null;
    this.queryId = error.query_id || null;
  }
}

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, { error: { code: "UNAVAILABLE", message: "网络连接失败，请检查网络后重试。" } });
  }
  if (response.status === 204) return null;
  let answer = null;
  try {
    answer = await response.json();
  } catch (e) {
    answer = null;
  }
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

/** Whether a cookie session is live; keeps its CSRF token for the writes. */
export async function startSession() {
  try {
    csrfToken = (await call("GET", "/h5/session")).csrf_token;
    return true;
  } catch (e) {
    if (e.status === 401) {
      csrfToken = null;
      return false;
    }
    throw e;
  }
}

export async function logout() {
  await call("POST", "/h5/logout", {});
  csrfToken = null;
}

export const requestCode = (phone) => call("POST", "/api/v1/verification-codes", { phone });
export const submitQuery = (form) => call("POST", "/api/v1/queries", form);
export const getQuery = (queryId) => call("GET", `/api/v1/queries/${encodeURIComponent(queryId)}`);
export const listEnterprises = () => call("GET", "/api/v1/enterprises");
