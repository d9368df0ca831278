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

  // ---- counting
  var answerForm = document.getElementById("answer-form");
  if (answerForm) {
    var input = document.getElementById("answer");
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
    // In place: the answer goes to the JSON API (the page's own URL, Accept: application/json)
    // and a next count task replaces this one on the page: one request an answer instead of the
    // form, its redirect and the next page. A stored answer is handled here, and an answer over
    // the rate (said on the page, the answer kept, to send again); anything else (an error, a
    // page that is not JSON) is sent again as the plain form, so that the server's page says
    // what happened, exactly as without this script. Nothing was stored by the first try, so
    // sending it again is safe.
    var inPlace = answerForm.dataset.inplace === "1" && window.fetch && window.FormData;
    var native = false;  // the plain form's own submission, after a try in place
    answerForm.addEventListener("submit", function (ev) {
      if (native) { return; }
      // The next task's image is still loading: an answer now would be given without seeing it.
      if (countImage && countImage.classList.contains("loading")) { ev.preventDefault(); return; }
      if (sent) { ev.preventDefault(); return; }  // one submission per task, even on double Enter
      sent = true;
      if (!inPlace) { return; }
      ev.preventDefault();
      var submitter = ev.submitter;
      var data = new FormData(answerForm);
      if (submitter && submitter.name) { data.append(submitter.name, submitter.value); }
      fetch(window.location.href, { method: "POST", body: data, credentials: "same-origin",
                                    headers: { "Accept": "application/json" } })
        .then(function (r) {
          var json = (r.headers.get("Content-Type") || "").indexOf("application/json") === 0;
          return json ? r.json() : null;
        })
        .then(function (body) {
          if (body && !body.ok && body.error && body.error.code === "rate_limited") {
            showError(body.error.message);
            sent = false;
            return;
          }
          if (!body || !body.ok) { sendPlain(submitter); return; }
          if (body.done) { window.location.assign(body.next); return; }
          if (body.task.kind !== "count") { window.location.assign(window.location.href); return; }
          showCount(body.task, body.progress);
          sent = false;
        })
        .catch(function () { window.location.assign(window.location.href); });  // the page shows where things are
    });
  }

  function showError(message) {
    var el = document.querySelector(".error[role=alert]");
    if (!el) {
      el = document.createElement("p");
      el.className = "error";
      el.setAttribute("role", "alert");
      var bar = document.querySelector(".progress");  // where the server's page says its errors
      if (bar) { bar.insertAdjacentElement("afterend", el); } else { answerForm.parentNode.insertBefore(el, answerForm); }
    }
    el.textContent = message;
  }

  function sendPlain(submitter) {
    native = true;
    if (answerForm.requestSubmit) { answerForm.requestSubmit(submitter || undefined); return; }
    // An older browser: submit() sends no button, so the button's field ("can't tell") goes along by hand.
    if (submitter && submitter.name) {
      var field = document.createElement("input");
      field.type = "hidden";
      field.name = submitter.name;
      field.value = submitter.value;
      answerForm.appendChild(field);
    }
    answerForm.submit();
  }

  // The next count task, where the last one was: its token, question, image (hidden until it
  // has loaded, so that the last image is never counted for the next question), progress and
  // title; an answer field left empty, the error and the undo notice of the last task gone, and
  // an undo button (there is now an answer to undo).
  function showCount(task, progress) {
    answerForm.querySelector("input[name=token]").value = task.token;
    answerForm.querySelector("label[for=answer]").textContent = task.question;
    var img = document.getElementById("count-image");
    if (stage && stage.classList.contains("zoomed")) { toggleZoom(); }
    if (img.getAttribute("src") !== task.images[0]) {  // the same image again loads nothing
      img.classList.add("loading");
      img.src = task.images[0];
    }
    var label = document.querySelector(".progress-label");
    if (label) { label.textContent = "Task " + task.number + " of " + progress.total + " \u00b7 " + progress.answered + " answered"; }
    var bar = document.querySelector(".progress");
    if (bar) {
      bar.setAttribute("aria-valuenow", String(progress.answered));
      bar.querySelector("span").style.width = progress.percent + "%";
    }
    document.title = document.title.replace(/task \d+/, "task " + task.number);
    Array.prototype.forEach.call(document.querySelectorAll(".error[role=alert], #notice"), function (el) { el.remove(); });
    if (undoForm && !document.getElementById("undo")) {
      var button = document.createElement("button");
      button.type = "submit";
      button.id = "undo";
      button.textContent = "Undo last answer";
      undoForm.appendChild(button);
    }
    var input = document.getElementById("answer");
    input.value = "";
    input.focus();
  }
  var countImage = document.getElementById("count-image");
  if (countImage) {
    countImage.addEventListener("load", function () { countImage.classList.remove("loading"); fit(countImage); });
    // A next image that does not load: the page from the server (the first one's errors are its own).
    countImage.addEventListener("error", function () {
      if (countImage.classList.contains("loading")) { window.location.assign(window.location.href); }
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
      if (selects[i].value !== "") { return; }
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
    rankForm.addEventListener("submit", function (ev) {
      // A skip or "all equally good" carries no ranks of its own.
      var skipping = ev.submitter && (ev.submitter.name === "skip_reason" || ev.submitter.name === "all_equal");
      if (skipping) { reset(); }
      if (sentRank) { ev.preventDefault(); return; }
      if (!skipping && !complete()) {
        // Said here, without a round trip, so the images chosen so far stay chosen.
        ev.preventDefault();
        rankError.textContent = "Rank all " + width + " images (1 = best, " + width + " = worst), or skip with a reason.";
        rankError.hidden = false;
        return;
      }
      sentRank = true;
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
    pairForm.addEventListener("submit", function (ev) {
      if (sentPair) { ev.preventDefault(); return; }  // one answer per task, even on a double key press
      sentPair = true;
    });
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
