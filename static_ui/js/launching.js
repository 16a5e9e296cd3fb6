// What every launch does once the server has answered: remember the session in this tab and
// open it. The session page then says plainly which limits this provider does not enforce
// (the launch answer's `warnings`, repeated in the session's details).

import { rememberSession } from "./store.js";
import { toast } from "./ui.js";

export function launched(result, { name, navigate }) {
  rememberSession(result.session_id);
  toast(`${name} is ready`, { type: "success", timeout: 2500 });
  navigate(`#/session/${result.session_id}`);
}
