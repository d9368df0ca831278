// Keyboard and click handling for the evaluator's tasks. Without this script the
// forms still work (a number field and one rank menu per image); with it, the keyboard alone
// or clicks alone are enough.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  // A touch screen without a keyboard: the CSS hides key hints (as its media query does;
  // the class also holds while a full-page screenshot resizes the emulated screen).
  if (window.matchMedia && window.matchMedia("(hover: none) and (pointer: coarse)").matches) {
    document.documentElement.classList.add("touch");
  }
  var undoForm = document.getElementById("undo-form");

  // ---- images: as large as the viewport allows. A small image (class "pixelated") is
  // shown at a whole multiple of its own size, so every source pixel is an equal square.
  var SMALL = 128;  // the server's PIXELATED_BELOW
  var fitted = Array.prototype.slice.call(document.querySelectorAll("img[data-fit]"));

  function natural(img) {
    return [img.naturalWidth || Number(img.dataset.w), img.naturalHeight || Number(img.dataset.h)];
  }
  function room(img) {
    // Width: the image's box. Height: the viewport less the controls around the image.
    var box = img.parentElement, style = getComputedStyle(box);
    var width = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    var reserve = img.dataset.fit === "stage" ? 250 : 200;
    var height = img.dataset.fit === "stage" ? window.innerHeight - reserve : (window.innerHeight - reserve) / 2;
    return Math.max(48, Math.floor(Math.min(width, height > 120 ? height : width)));
  }
  function fit(img) {
    var size = natural(img), w = size[0], h = size[1];
    if (!w || !h) { return; }
    // Zoomed, the image has the whole viewport (the stage covers it): as large as fits, never
    // larger, so nothing of it is cropped.
    var zoomed = img.closest(".zoomed");
    var avail = zoomed ? Math.max(48, Math.min(window.innerWidth, window.innerHeight) - 24) : room(img);
    var longest = Math.max(w, h), scale;
    if (longest < SMALL) { scale = Math.max(1, Math.floor(avail / longest)); }
    else { scale = avail / longest; }
    img.width = Math.round(w * scale);
    img.height = Math.round(h * scale);
  }
  function fitAll() { fitted.forEach(fit); }
  fitted.forEach(function (img) {
    if (img.complete) { fit(img); } else { img.addEventListener("load", function () { fit(img); }); }
  });
  window.addEventListener("resize", fitAll);

  var stage = document.getElementById("stage");
  function toggleZoom() {
    if (!stage) { return; }
    stage.classList.toggle("zoomed");
    fitAll();
  }
  if (stage) { stage.addEventListener("click", toggleZoom); }

  function undo() {
    if (undoForm && document.getElementById("undo")) { undoForm.submit(); }
  }

  // ---- answers in place
  // The answer goes to the JSON API (the page's own URL, Accept: application/json) and a next
  // task of the same kind and layout replaces this one on the page: one request an answer
  // instead of the form, its redirect and the next page. A stored answer is handled here, and
  // an answer over the rate (said on the page, the answer kept, to send again); anything else
  // (an error, a page that is not JSON) is sent again as the plain form, so that the server's
  // page says what happened, exactly as without this script. Nothing was stored by the first
  // try, so sending it again is safe. A next task of another kind or layout, the end, a
  // network failure: that page is loaded.
  var native = false;  // the plain form's own submission, after a try in place
  // Called when a next task has been put in place (its token in the form); the time-away
  // block below sets it.
  var putInPlace = function () {};
  function inPlace(form) {
    return form.dataset.inplace === "1" && !!window.fetch && !!window.FormData && !!window.URLSearchParams;
  }

  // ``show(task, progress)`` puts the next task on the page and says true, or says false when
  // this page cannot show it; ``retry()`` lets the answer be sent again.
  function sendInPlace(form, submitter, show, retry) {
    // URL-encoded, as the plain form sends it (FormData as a body would be multipart, which
    // costs the server a multipart parse for a few short fields).
    var data = new URLSearchParams();
    new FormData(form).forEach(function (value, name) { data.append(name, value); });
    if (submitter && submitter.name) { data.append(submitter.name, submitter.value); }
    fetch(window.location.href, { method: "POST", body: data, credentials: "same-origin",
                                  headers: { "Accept": "application/json" } })
      .then(function (r) {
        var json = (r.headers.get("Content-Type") || "").indexOf("application/json") === 0;
        return json ? r.json() : null;
      })
      .then(function (body) {
        if (body && !body.ok && body.error && body.error.code === "rate_limited") {
          showError(form, body.error.message);
          retry();
          return;
        }
        if (!body || !body.ok) { sendPlain(form, submitter); return; }
        if (body.done) { window.location.assign(body.next); return; }
        if (!show(body.task, body.progress)) { window.location.assign(window.location.href); return; }
        form.querySelector("input[name=token]").value = body.task.token;
        putInPlace();
        showProgress(body.task, body.progress);
        retry();
      })
      .catch(function () { window.location.assign(window.location.href); });  // the page shows where things are
  }

  function showError(form, message) {
    var el = document.getElementById("rank-error") || document.querySelector(".error[role=alert]");
    if (!el) {
      el = document.createElement("p");
      el.className = "error";
      el.setAttribute("role", "alert");
      var bar = document.querySelector(".progress");  // where the server's page says its errors
      if (bar) { bar.insertAdjacentElement("afterend", el); } else { form.parentNode.insertBefore(el, form); }
    }
    el.textContent = message;
    el.hidden = false;
  }

  function sendPlain(form, submitter) {
    native = true;
    if (form.requestSubmit) { form.requestSubmit(submitter || undefined); return; }
    // An older browser: submit() sends no button, so the button's field ("can't tell", a skip,
    // a pairwise choice) goes along by hand.
    if (submitter && submitter.name) {
      var field = document.createElement("input");
      field.type = "hidden";
      field.name = submitter.name;
      field.value = submitter.value;
      form.appendChild(field);
    }
    form.submit();
  }

  // What every task page shows around the task, for the next task: its progress and title; the error and the undo notice of the last task gone; an undo button (there is now
  // an answer to undo); the page at its top and nothing focused, as a page load leaves it (a
  // skip button keeping the focus would take the next Enter).
  function showProgress(task, progress) {
    var label = document.querySelector(".progress-label");
    if (label) { label.textContent = "Task " + task.number + " of " + progress.total + " \u00b7 " + progress.answered + " answered"; }
    var bar = document.querySelector(".progress");
    if (bar) {
      bar.setAttribute("aria-valuenow", String(progress.answered));
      bar.querySelector("span").style.width = progress.percent + "%";
    }
    document.title = document.title.replace(/task \d+/, "task " + task.number);
    Array.prototype.forEach.call(document.querySelectorAll(".error[role=alert], #notice"), function (el) {
      if (el.id === "rank-error") { el.hidden = true; el.textContent = ""; } else { el.remove(); }
    });
    if (undoForm && !document.getElementById("undo")) {
      var button = document.createElement("button");
      button.type = "submit";
      button.id = "undo";
      button.textContent = "Undo last answer";
      undoForm.appendChild(button);
    }
    if (stage && stage.classList.contains("zoomed")) { toggleZoom(); }
    if (document.activeElement && document.activeElement.blur) { document.activeElement.blur(); }
    window.scrollTo(0, 0);
  }

  // The next task's images where the last ones were, each hidden (class "loading") until it
  // has loaded, so that a last image is never judged for the next task.
  function showImages(imgs, urls) {
    imgs.forEach(function (img, i) {
      if (img.getAttribute("src") === urls[i]) { return; }  // the same image again loads nothing
      img.classList.add("loading");
      img.src = urls[i];
    });
  }
  // An answer waits for the task's images: given before they show, it would be given without seeing them.
  function loading() { return document.querySelector("img.loading") !== null; }
  fitted.forEach(function (img) {
    img.addEventListener("load", function () {
      // The server's rule (PIXELATED_BELOW): a next image may be smaller or larger than the last.
      var size = natural(img);
      img.classList.toggle("pixelated", Math.max(size[0], size[1]) < SMALL);
      img.classList.remove("loading");
      fit(img);
    });
    // A next image that does not load: the page from the server (the first ones' errors are its own).
    img.addEventListener("error", function () {
      if (img.classList.contains("loading")) { window.location.assign(window.location.href); }
    });
  });
  // A next ranking or comparison in place when it lays out as this one does (as many images,
  // ties allowed or not): its caption and images; false when it does not.
  function showRanking(task, imgs, ties) {
    if (task.kind !== "rank" || task.images.length !== imgs.length || task.allow_ties !== ties) { return false; }
    document.querySelector(".caption").textContent = "\u201c" + task.caption + "\u201d";
    showImages(imgs, task.images);
    return true;
  }

  // ---- counting
  var answerForm = document.getElementById("answer-form");
  if (answerForm) {
    var input = document.getElementById("answer");
    var countImage = document.getElementById("count-image");
    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
      if (ev.key === "?") { ev.preventDefault(); document.getElementById("cant-tell").click(); }
      else if (ev.key === "z" || ev.key === "Z") { ev.preventDefault(); toggleZoom(); }
      else if (ev.key === "Escape") { ev.preventDefault(); if (stage && stage.classList.contains("zoomed")) { toggleZoom(); } else { undo(); } }
      else if (/^[0-9]$/.test(ev.key) && document.activeElement !== input) {
        ev.preventDefault(); input.focus(); input.value += ev.key;
      }
    });
    // A pre-filled answer (sent back after an error or an undo) is replaced by typing.
    input.addEventListener("focus", function () { input.select(); });
    if (document.activeElement === input) { input.select(); }
    input.addEventListener("input", function () { input.value = input.value.replace(/[^0-9]/g, ""); });
    var sent = false;
    var showCount = function (task) {
      if (task.kind !== "count") { return false; }
      answerForm.querySelector("label[for=answer]").textContent = task.question;
      showImages([countImage], task.images);
      input.value = "";
      return true;
    };
    answerForm.addEventListener("submit", function (ev) {
      if (native) { return; }
      if (loading()) { ev.preventDefault(); return; }
      if (sent) { ev.preventDefault(); return; }  // one submission per task, even on double Enter
      sent = true;
      if (!inPlace(answerForm)) { return; }
      ev.preventDefault();
      sendInPlace(answerForm, ev.submitter, showCount, function () {
        sent = false;
        input.focus();
      });
    });
  }

  // ---- ranking
  var rankForm = document.getElementById("rank-form");
  if (rankForm) {
    var tiles = Array.prototype.slice.call(rankForm.querySelectorAll(".tile"));
    var selects = tiles.map(function (t) { return t.querySelector("select"); });
    var width = tiles.length;  // the protocol's number of variants, as the server laid them out
    var allowTies = rankForm.dataset.ties === "1";
    var tieButton = document.getElementById("tie");
    var tieNext = false;  // the next image picked shares the rank of the one picked before
    var lastRank = null;

    var rankError = document.getElementById("rank-error");
    function render() {
      tiles.forEach(function (t, i) {
        var r = selects[i].value;
        t.classList.toggle("ranked", r !== "");
        t.querySelector(".badge").textContent = r;
        t.setAttribute("aria-label", "Image " + (i + 1) + (r ? ", rank " + r : ", not ranked yet"));
      });
    }
    function complete() { return selects.every(function (s) { return s.value !== ""; }); }
    function nextRank() {
      var used = selects.map(function (s) { return s.value; }).filter(Boolean).map(Number);
      // With ties, competition ranks: after a tie the next rank skips the places the tied
      // images took ("1, 1, 3"), i.e. one more than the images ranked so far.
      if (allowTies) { return used.length < width ? used.length + 1 : null; }
      for (var r = 1; r <= width; r++) { if (used.indexOf(r) < 0) { return r; } }
      return null;
    }
    function setTie(on) {
      tieNext = on && lastRank !== null;
      if (tieButton) { tieButton.setAttribute("aria-pressed", tieNext ? "true" : "false"); }
    }
    function pick(i) {
      if (selects[i].value !== "" || loading()) { return; }
      var r = tieNext ? lastRank : nextRank();
      setTie(false);
      if (r === null) { return; }
      selects[i].value = String(r);
      lastRank = r;
      render();
    }
    function reset() { selects.forEach(function (s) { s.value = ""; }); lastRank = null; setTie(false); render(); }
    if (tieButton) { tieButton.addEventListener("click", function () { setTie(!tieNext); }); }

    tiles.forEach(function (t, i) {
      t.addEventListener("click", function (ev) {
        if (ev.target.tagName === "SELECT" || ev.target.tagName === "OPTION" || ev.target.tagName === "LABEL") { return; }
        pick(i);
      });
      selects[i].addEventListener("change", render);
    });
    document.getElementById("reset").addEventListener("click", reset);
    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
      if (document.activeElement && document.activeElement.tagName === "SELECT") { return; }
      var focused = tiles.indexOf(document.activeElement);
      if (/^[1-9]$/.test(ev.key) && Number(ev.key) <= width) { ev.preventDefault(); pick(Number(ev.key) - 1); }
      else if (allowTies && ev.key === "=") { ev.preventDefault(); setTie(!tieNext); }
      else if (allowTies && ev.key === "g") { ev.preventDefault(); reset(); document.getElementById("all-good").click(); }
      else if (focused >= 0 && (ev.key === " " || ev.key === "Enter")) { ev.preventDefault(); pick(focused); }
      else if (ev.key === "Backspace") { ev.preventDefault(); reset(); }
      else if (ev.key === "Enter") {
        if (document.activeElement && document.activeElement.tagName === "BUTTON") { return; }  // the button's own
        ev.preventDefault(); document.getElementById("submit").click();
      }
      else if (ev.key === "h") { ev.preventDefault(); reset(); document.getElementById("skip-hard").click(); }
      else if (ev.key === "b") { ev.preventDefault(); reset(); document.getElementById("skip-bad").click(); }
      else if (ev.key === "Escape") { ev.preventDefault(); undo(); }
    });
    var sentRank = false;
    var tileImages = tiles.map(function (t) { return t.querySelector("img"); });
    var showRank = function (task) {  // its ranks start empty
      if (!showRanking(task, tileImages, allowTies)) { return false; }
      reset();
      return true;
    };
    rankForm.addEventListener("submit", function (ev) {
      if (native) { return; }
      if (loading() || sentRank) { ev.preventDefault(); return; }
      // A skip or "all equally good" carries no ranks of its own.
      var skipping = ev.submitter && (ev.submitter.name === "skip_reason" || ev.submitter.name === "all_equal");
      if (skipping) { reset(); }
      if (!skipping && !complete()) {
        // Said here, without a round trip, so the images chosen so far stay chosen.
        ev.preventDefault();
        rankError.textContent = "Rank all " + width + " images (1 = best, " + width + " = worst), or skip with a reason.";
        rankError.hidden = false;
        return;
      }
      sentRank = true;
      if (!inPlace(rankForm)) { return; }
      ev.preventDefault();
      sendInPlace(rankForm, ev.submitter, showRank, function () { sentRank = false; });
    });
    render();
  }

  // ---- pairwise A/B: each button is a whole answer; the keys press them
  var pairForm = document.getElementById("pair-form");
  if (pairForm) {
    var keyTo = { ArrowLeft: "choose-left", "1": "choose-left", ArrowRight: "choose-right", "2": "choose-right",
                  ArrowDown: "choose-same", "0": "choose-same", h: "skip-hard", b: "skip-bad" };
    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.shiftKey) { return; }
      if (ev.key === "Escape") { ev.preventDefault(); undo(); return; }
      var button = keyTo[ev.key] && document.getElementById(keyTo[ev.key]);
      if (button) { ev.preventDefault(); button.click(); }
    });
    Array.prototype.forEach.call(pairForm.querySelectorAll("[data-side]"), function (fig) {
      fig.addEventListener("click", function () { document.getElementById("choose-" + fig.dataset.side).click(); });
    });
    var sentPair = false;
    var pairImages = Array.prototype.slice.call(pairForm.querySelectorAll("[data-side] img"));
    var pairTies = document.getElementById("choose-same") !== null;
    var showPair = function (task) { return showRanking(task, pairImages, pairTies); };
    pairForm.addEventListener("submit", function (ev) {
      if (native) { return; }
      // One answer per task, even on a double key press; none before the images show.
      if (loading() || sentPair) { ev.preventDefault(); return; }
      sentPair = true;
      if (!inPlace(pairForm)) { return; }
      ev.preventDefault();
      sendInPlace(pairForm, ev.submitter, showPair, function () { sentPair = false; });
    });
  }

  // ---- time away: the server is told (navigator.sendBeacon, which outlives the page) when
  // the participant goes away from the task (the page hidden, or no input for the server's
  // idle period, data-idle seconds) and when they come back (the page visible again, the next
  // input), and stamps both with its own clock: time away is not time on task. The report
  // names the task on the page now (its form's token: an answer in place changes it). Without
  // this script, or sendBeacon, nothing is reported and the whole time counts.
  var awayForm = document.querySelector("form[data-away]");
  if (awayForm && navigator.sendBeacon && window.URLSearchParams) {
    var idleMs = Number(awayForm.dataset.idle) * 1000;  // 0: only a hidden page is away
    var isAway = false;
    // The server keeps one absence per task, whichever page reported it, and pages' reports
    // may arrive in any order: a reloaded page's request can overtake the "away" its unloading
    // page sent; a tab left behind says "away" as a new tab opens, or as the participant
    // switches back to another tab, whose "back" may arrive first. So the first input on a
    // page, and the first after it came to the front again, says "back" once, whatever this
    // page has said: an absence another page opened is not left running behind this one.
    // (At most one report per page load and per return to the tab; a task answered in place
    // on the same page needs none.)
    var unsure = true;
    var lastInput = Date.now();
    var idleTimer = null;
    var report = function (state) {
      var data = new URLSearchParams();
      data.append("csrfmiddlewaretoken", awayForm.querySelector("input[name=csrfmiddlewaretoken]").value);
      data.append("token", awayForm.querySelector("input[name=token]").value);
      data.append("state", state);
      navigator.sendBeacon(awayForm.dataset.away, data);
    };
    var goAway = function () {
      clearTimeout(idleTimer);
      if (!isAway) { isAway = true; report("away"); }
    };
    // One timer, set for when the idle period would end; input only moves lastInput.
    var watchIdle = function () {
      clearTimeout(idleTimer);
      if (isAway || !(idleMs > 0)) { return; }
      var left = lastInput + idleMs - Date.now();
      if (left > 0) { idleTimer = setTimeout(watchIdle, left); } else { goAway(); }
    };
    var comeBack = function () {
      lastInput = Date.now();
      if (!isAway && !unsure) { return; }
      var restart = isAway;  // the idle timer stops while away
      isAway = unsure = false;
      report("back");
      if (restart) { watchIdle(); }
    };
    ["pointerdown", "pointermove", "keydown", "touchstart", "wheel", "scroll"].forEach(function (name) {
      window.addEventListener(name, comeBack, { capture: true, passive: true });
    });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") { goAway(); } else { comeBack(); unsure = true; }
    });
    window.addEventListener("pagehide", goAway);  // closed, reloaded, or left for another page
    // A page hidden while its answer was on the way (the participant answered and left at
    // once: another tab, a phone's screen locked) said "away" with the answered task's
    // token, and the answer ended that absence; the next task, put in place on a page still
    // away, is away from its first showing: the server is told so with its own token.
    putInPlace = function () { if (isAway) { report("away"); } };
    window.addEventListener("pageshow", function (ev) {  // back from the cache
      if (ev.persisted) { comeBack(); unsure = true; }
    });
    if (document.visibilityState === "hidden") { goAway(); } else { watchIdle(); }
  }

  // ---- instructions: Enter starts the tasks wherever the focus is (autofocus puts it on
  // "Start", but a click on the page moves it away)
  var start = document.getElementById("start");
  if (start) {
    document.addEventListener("keydown", function (ev) {
      if (ev.key !== "Enter" || ev.ctrlKey || ev.metaKey || ev.altKey || ev.shiftKey) { return; }
      var el = document.activeElement;
      if (el && el !== start && /^(A|BUTTON|INPUT|SELECT|TEXTAREA)$/.test(el.tagName)) { return; }  // theirs
      ev.preventDefault();
      start.click();
    });
  }
})();
