// The study dashboard's live progress: render progress.json, then poll it.
// Polling pauses while the tab is hidden and backs off when the server does not answer.
(function () {
  "use strict";
  var section = document.getElementById("progress");
  if (!section) return;
  var url = section.dataset.progressUrl;
  var interval = parseInt(section.dataset.intervalMs, 10) || 3000;
  var failures = 0;
  var timer = null;

  function pct(x) { return x === null || x === undefined ? "\u2013" : Math.round(100 * x) + "%"; }
  function fixed(x, d) { return x === null || x === undefined ? "\u2013" : x.toFixed(d); }
  function set(id, text) { var el = document.getElementById(id); if (el) el.textContent = text; }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }

  // "Update results" runs on a worker: show its stage, and load the page again once it
  // has stored results newer than the ones shown.
  function renderUpdate(results) {
    var line = document.getElementById("results-update");
    var section = document.getElementById("results");
    var button = document.getElementById("update-results");
    var u = results && results.update;
    if (!line || !u) return;
    var active = u.state === "queued" || u.state === "running";
    line.hidden = false;
    line.dataset.state = u.state;
    line.textContent = u.state === "queued" ? "Update queued: waiting for a worker." :
      u.state === "running" ? "Updating the results: " + u.stage + "\u2026" :
      u.state === "failed" ? "The last update failed: " + u.message : u.message;
    if (button) button.disabled = active;
    if (u.state === "done" && section && results.id !== null && String(results.id) !== section.dataset.resultId) {
      window.location.reload();
    }
  }

  function render(p) {
    set("p-started", p.evaluators.started);
    set("p-finished", p.evaluators.finished);
    set("p-responses", p.answers_toward_plan);
    set("p-planned-answers", p.answers_planned);
    set("p-covered", p.items.covered);
    set("p-items", p.items.planned);
    set("p-mean-seconds", fixed(p.time.mean_seconds_per_answer, 1));
    set("p-skip-rate", pct(p.ranking_skip_rate));
    set("p-cant-tell", pct(p.cant_tell_rate));
    set("p-gold", pct(p.gold_accuracy));
    var bar = document.getElementById("p-bar");
    if (bar) bar.style.width = (p.answers_planned ? Math.min(100, 100 * p.answers_toward_plan / p.answers_planned) : 0) + "%";
    var t = p.items.by_task;
    set("p-detail",
      (p.responses > p.answers_toward_plan ? p.responses + " answers in all: " +
        (p.responses - p.answers_toward_plan) + " beyond the plan (places given up and refilled). " : "") +
      p.evaluators.slots + " places; " + p.evaluators.joined + " opened the link, " + p.evaluators.consented +
      " consented, " + p.evaluators.declined + " declined, " + p.evaluators.abandoned + " timed out, " + p.evaluators.simulated + " simulated. Count items covered " + t.count.covered + "/" +
      t.count.items + ", ranking items " + t.rank.covered + "/" + t.rank.items + ". Median time on tasks of a finished evaluator: " +
      (p.time.median_seconds_per_finished_evaluator === null ? "\u2013" : fixed(p.time.median_seconds_per_finished_evaluator / 60, 1) + " min") + ".");
    var body = document.getElementById("evaluators-body");
    if (body) {
      var rows = document.createDocumentFragment();
      p.per_evaluator.forEach(function (e) {
        var tr = document.createElement("tr");
        tr.dataset.evaluator = e.pseudonym;
        cell(tr, e.pseudonym + (e.simulated ? " (simulated)" : ""));
        cell(tr, e.status);
        cell(tr, e.answered + " / " + e.planned);
        cell(tr, fixed(e.seconds / 60, 1));
        cell(tr, fixed(e.mean_seconds, 1));
        cell(tr, pct(e.ranking_skip_rate));
        cell(tr, pct(e.task_skip_rate));
        cell(tr, pct(e.cant_tell_rate));
        cell(tr, e.gold_answered ? pct(e.gold_accuracy) + " of " + e.gold_answered : "\u2013");
        rows.appendChild(tr);
      });
      body.replaceChildren(rows);
    }
    var stale = document.getElementById("results-stale");
    if (stale && p.results) stale.hidden = p.results.current;
    renderUpdate(p.results);
    set("p-updated", "updated " + new Date().toLocaleTimeString());
    section.dataset.responses = p.responses;
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(poll, delay);
  }

  function poll() {
    if (document.hidden) { schedule(interval); return; }
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (p) { failures = 0; render(p); schedule(interval); })
      .catch(function () { failures += 1; schedule(Math.min(60000, interval * Math.pow(2, failures))); });
  }

  // The page itself carries no progress (computing it twice per visit cost more than the
  // page): the first poll goes out at once.
  document.addEventListener("visibilitychange", function () { if (!document.hidden) schedule(0); });
  schedule(0);
})();
