// The mailbox page: the list follows the sink live; the first screen is drawn by the server.
import { watchMailbox } from "./mailbox.js";

const list = document.querySelector("#inbox");
const empty = document.querySelector("#inbox-empty");
watchMailbox(list, { limit: 500, onCount: (count) => { empty.hidden = count > 0; } });
