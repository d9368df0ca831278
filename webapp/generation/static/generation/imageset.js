// An image set import that is queued or running: polls its JSON status every two seconds
// and loads the page again when the status changes (queued -> running -> done or failed),
// so the page shows what the worker stored, or every problem it found, without a reload.
(function () {
  "use strict";
  var panel = document.getElementById("imageset-job");
  if (!panel) { return; }
  var ACTIVE = { queued: true, running: true };
  var shown = panel.getAttribute("data-status");
  if (!ACTIVE[shown]) { return; }
  var url = panel.getAttribute("data-status-url");
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (s) {
        if (s.status !== shown) { window.location.reload(); return; }
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 2000);
})();
