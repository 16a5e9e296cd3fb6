// Who is using this tab: the account behind its token (AUTH_MODE=token), and whether the
// admin routes (audit, everyone's usage) answer it. main.js refreshes it when the token
// changes; pages read it to decide what to offer.

import { api, tokenMode } from "./api.js";
import { getToken } from "./store.js";

const NOBODY = { auth_mode: "none", user: null, admin: false, token_id: null };
let current = { ...NOBODY };

export function me() {
  return current;
}

/** Ask the server again. Rejects with the ApiError (401: the token was not accepted). */
export async function refreshMe() {
  if (tokenMode() && !getToken()) {
    current = { ...NOBODY, auth_mode: "token" };
    return current;
  }
  try {
    current = await api("/api/me");
  } catch (err) {
    current = { ...NOBODY, auth_mode: tokenMode() ? "token" : "none" };
    throw err;
  }
  return current;
}
