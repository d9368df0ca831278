// Keyboard and click handling for the evaluator's tasks. Without this script the
// forms still work (a number field and four rank menus); with it, the keyboard alone
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
    answerForm.addEventListener("submit", function (ev) {
      if (sent) { ev.preventDefault(); return; }  // one submission per task, even on double Enter
      sent = true;
    });
  }

  // ---- ranking
  var rankForm = document.getElementById("rank-form");
  if (rankForm) {
    var tiles = Array.prototype.slice.call(rankForm.querySelectorAll(".tile"));
    var selects = tiles.map(function (t) { return t.querySelector("select"); });

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
      for (var r = 1; r <= 4; r++) { if (used.indexOf(r) < 0) { return r; } }
      return null;
    }
    function pick(i) {
      if (selects[i].value !== "") { return; }
      var r = nextRank();
      if (r === null) { return; }
      selects[i].value = String(r);
      render();
    }
    function reset() { selects.forEach(function (s) { s.value = ""; }); render(); }

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
      if (/^[1-4]$/.test(ev.key)) { ev.preventDefault(); pick(Number(ev.key) - 1); }
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
      var skipping = ev.submitter && ev.submitter.name === "skip_reason";
      if (skipping) { reset(); }
      if (sentRank) { ev.preventDefault(); return; }
      if (!skipping && !complete()) {
        // Said here, without a round trip, so the images chosen so far stay chosen.
        ev.preventDefault();
        rankError.textContent = "Rank all four images (1 = best, 4 = worst), or skip with a reason.";
        rankError.hidden = false;
        return;
      }
      sentRank = true;
    });
    render();
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
