// Live progress of a generation batch: polls the batch's JSON endpoint and updates the
// panel in place, every two seconds while the batch is queued or running.
(function () {
  "use strict";
  var panel = document.getElementById("batch");
  if (!panel) { return; }
  var url = panel.getAttribute("data-progress-url");
  var ACTIVE = { queued: true, running: true };

  function field(name) { return panel.querySelector('[data-field="' + name + '"]'); }
  function setText(name, text) { var el = field(name); if (el) { el.textContent = text; } }
  function pct(done, total) { return total ? Math.floor(100 * done / total) : 100; }
  function duration(seconds) {
    if (seconds === null || seconds === undefined) { return "–"; }
    var s = Math.round(seconds), m = Math.floor(s / 60);
    return (m ? m + " min " : "") + (s % 60) + " s left";
  }

  function render(p) {
    setText("status_label", p.status_label);
    setText("done", p.done);
    setText("total", p.total);
    setText("rate", p.rate === null ? "–" : p.rate.toFixed(2));
    setText("eta", duration(p.eta_seconds));
    setText("note", p.note || "");
    var bar = panel.querySelector('[data-bar="total"]');
    bar.style.width = p.percent + "%";
    bar.parentNode.setAttribute("aria-valuenow", p.percent);
    p.variants.forEach(function (v) {
      var row = panel.querySelector('tr[data-variant="' + CSS.escape(v.name) + '"]');
      if (!row) { return; }
      row.querySelector('[data-cell="done"]').textContent = v.done;
      row.querySelector('[data-cell="bar"]').style.width = pct(v.done, v.total) + "%";
    });
    setText("parts", Object.keys(p.parts).map(function (k) { return k + " " + p.parts[k]; }).join(", "));
    var errors = field("errors");
    errors.textContent = "";
    p.errors.forEach(function (e) {
      var line = document.createElement("p");
      line.className = "error";
      line.textContent = "Part " + e.part + " (" + e.variant + ", " + e.status + ", " + e.attempts + " attempts): " + e.message;
      errors.appendChild(line);
    });
    panel.querySelector('[data-action="retry"]').hidden = !p.can_retry;
    panel.querySelector('[data-action="cancel"]').hidden = !p.can_cancel;
  }

  // The rest of the page (the study's status, the images still missing, the launch and
  // checkpoint forms) follows from the batch's end: once a batch seen running here ends,
  // the page is loaded again, once. "Seen running" includes the page as the server drew it:
  // a batch that ends before this script's first poll (a slow script, a fast last part)
  // would otherwise leave the page saying it runs.
  var sawActive = ACTIVE[panel.getAttribute("data-status")] === true;
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (p) {
        render(p);
        if (ACTIVE[p.status]) { sawActive = true; window.setTimeout(poll, 2000); return; }
        if (sawActive) { window.location.reload(); return; }
        if (p.can_retry) { window.setTimeout(poll, 2000); }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  poll();
})();
