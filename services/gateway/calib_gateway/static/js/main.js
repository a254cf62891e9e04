// The Admin Calibration Library: sign-in, observatory selector, tabs.
// State that a link can carry lives in the URL hash: #/<tab>?obs=<observatory id>.

import { Api, CALIBRATION } from "./api.js";
import { openMasterDetail } from "./detail.js";
import { h, replace } from "./dom.js";
import { loadIdentity } from "./identity.js";
import { framesTab } from "./tabs/frames.js";
import { jobsTab } from "./tabs/jobs.js";
import { maintenanceTab } from "./tabs/maintenance.js";
import { mastersTab } from "./tabs/masters.js";
import { needsTab } from "./tabs/needs.js";
import { settingsTab } from "./tabs/settings.js";
import { uploadTab } from "./tabs/upload.js";
import { errorText } from "./ui.js";

const TOKEN_KEY = "calib.token";
const SESSION_ENDED = "Your session has ended: sign in again.";

// `manage`: only for those who may change the observatory; `serverAdmin`: server admins only.
const TABS = [
  { id: "masters", label: "Masters", create: mastersTab },
  { id: "frames", label: "Individual Frames", create: framesTab },
  { id: "needs", label: "Needs", create: needsTab },
  { id: "jobs", label: "Jobs", create: jobsTab, manage: true },
  { id: "settings", label: "Settings", create: settingsTab },
  { id: "upload", label: "Upload master", create: uploadTab, manage: true },
  { id: "maintenance", label: "Maintenance", create: maintenanceTab, serverAdmin: true },
];

const root = document.getElementById("app");
let app = null; // the signed-in page, if any

function readHash() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  return { tab: path || "masters", observatory: new URLSearchParams(query).get("obs") || "" };
}

function writeHash(tab, observatory) {
  const query = observatory ? `?obs=${encodeURIComponent(observatory)}` : "";
  const hash = `#/${tab}${query}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  showSignIn(message);
}

function showSignIn(message = "") {
  if (app) app.close();
  app = null;
  const input = h("input", { id: "token", type: "password", name: "token", autocomplete: "off", required: true,
    "aria-describedby": "signin-error" });
  const error = h("p", { id: "signin-error", class: "field-error", role: "alert" }, message);
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "signin card", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Calibration Library"),
    h("p", { class: "hint" }, "Sign in with your Calib access token. It is kept only for this browser tab."),
    h("label", { for: "token" }, "Access token"), input, error, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    replace(error);
    try {
      await start(input.value.trim());
    } catch (failure) {
      replace(error, failure.status === 401 ? "That token was not accepted." : errorText(failure));
      button.disabled = false;
    }
  });
  replace(root, h("main", { class: "signin-page" }, form));
  input.focus();
}

async function start(token) {
  const api = new Api(token);
  const identity = await loadIdentity(api);
  sessionStorage.setItem(TOKEN_KEY, token);
  api.onUnauthorized = () => signOut(SESSION_ENDED);
  app = new App(api, identity);
  app.render();
}

class App {
  constructor(api, identity) {
    this.api = api;
    this.identity = identity;
    this.tabs = new Map();
    this.current = null;
    this.observatory = "";
    this.onHashChange = () => this.route();
  }

  context() {
    return {
      api: this.api,
      identity: this.identity,
      observatory: () => this.observatory,
      // an uploaded master's statistics arrive shortly after it: show the record as it is now
      openDetail: async (master) => openMasterDetail(this.api, master.stats ? master
        : await this.api.get(`${CALIBRATION}/frames/${encodeURIComponent(master.id)}`).catch(() => master)),
    };
  }

  visibleTabs() {
    return TABS.filter((tab) => !tab.serverAdmin || this.identity.serverAdmin);
  }

  render() {
    const tablist = h("div", { class: "tabs", role: "tablist", "aria-label": "Library sections",
      onkeydown: (event) => this.arrowKeys(event) });
    const panels = h("div", { class: "panels" });
    for (const spec of this.visibleTabs()) {
      const tab = spec.create(this.context());
      const button = h("button", { id: `tab-${spec.id}`, role: "tab", "aria-controls": `panel-${spec.id}`,
        "aria-selected": "false", tabindex: "-1", onclick: () => this.select(spec.id) }, spec.label);
      tab.panel.id = `panel-${spec.id}`;
      tab.panel.setAttribute("role", "tabpanel");
      tab.panel.setAttribute("aria-labelledby", button.id);
      tab.panel.hidden = true;
      tablist.append(button);
      panels.append(tab.panel);
      this.tabs.set(spec.id, { spec, tab, button });
    }
    this.notice = h("p", { class: "notice", role: "alert", hidden: true });
    replace(root,
      h("header", { class: "topbar" },
        h("h1", {}, "Calibration Library"),
        this.observatoryControl(),
        h("div", { class: "who" },
          h("span", { class: "who-name" }, this.identity.name || "signed in"),
          h("span", { class: "badge role" }, this.identity.role),
          h("button", { class: "secondary", onclick: () => signOut() }, "Sign out"))),
      h("nav", {}, tablist),
      this.notice,
      h("main", {}, panels));
    window.addEventListener("hashchange", this.onHashChange);
    this.route();
  }

  /** Stop listening and let every tab stop its background work (the jobs event stream). */
  close() {
    window.removeEventListener("hashchange", this.onHashChange);
    for (const { tab } of this.tabs.values()) if (tab.leave) tab.leave();
  }

  observatoryControl() {
    const label = h("label", { for: "observatory" }, "Observatory");
    this.observatoryInput = h("select", { id: "observatory", name: "observatory",
      onchange: () => this.go(this.current, this.observatoryInput.value) },
      h("option", { value: "" }, "— choose —"),
      this.identity.observatories.map((o) =>
        h("option", { value: o.id }, o.name && o.name !== o.id ? `${o.name} (${o.id})` : o.id)));
    return h("div", { class: "observatory-picker" }, label, this.observatoryInput);
  }

  go(tab, observatory) {
    writeHash(tab, observatory);
    this.route();
  }

  select(tabId) {
    this.go(tabId, this.observatory);
  }

  /** Apply the hash: pick the observatory and the tab, then load the tab. */
  route() {
    let { tab, observatory } = readHash();
    if (!observatory && this.identity.observatories.length) {
      observatory = this.identity.observatories[0].id;
    }
    let entry = this.tabs.get(tab) || this.tabs.get("masters");
    if (entry.spec.manage && !this.identity.canManage(observatory)) entry = this.tabs.get("masters");
    writeHash(entry.spec.id, observatory);
    this.observatory = observatory;
    this.observatoryInput.value = this.identity.canView(observatory) ? observatory : "";

    let problem = "";
    if (!observatory) problem = "Choose an observatory.";
    else if (!this.identity.canView(observatory)) problem = `You have no access to observatory '${observatory}'.`;
    this.notice.hidden = !problem;
    replace(this.notice, problem);

    for (const [id, { spec, tab: view, button }] of this.tabs) {
      const selected = id === entry.spec.id;
      const allowed = !spec.manage || this.identity.canManage(observatory);
      button.hidden = !allowed;
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
      view.panel.hidden = !selected || Boolean(problem) || !allowed;
      if (!selected && view.leave) view.leave();
    }
    this.current = entry.spec.id;
    if (!problem) {
      entry.tab.show(observatory).catch((error) => {
        this.notice.hidden = false;
        replace(this.notice, errorText(error));
      });
    }
  }

  arrowKeys(event) {
    const buttons = [...this.tabs.values()].map((t) => t.button).filter((b) => !b.hidden);
    const index = buttons.indexOf(document.activeElement);
    if (index < 0) return;
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (step) {
      const next = buttons[(index + step + buttons.length) % buttons.length];
      next.focus();
      next.click();
      event.preventDefault();
    }
  }
}

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  start(saved).catch((error) => (error.status === 401 ? signOut(SESSION_ENDED) : showSignIn(errorText(error))));
} else {
  showSignIn();
}
