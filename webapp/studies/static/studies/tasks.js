// Keyboard and click handling for the evaluator's tasks. Without this script the
// forms still work (a number field and four rank menus); with it, the keyboard alone
// or clicks alone are enough.
(function () {
  "use strict";
  var undoForm = document.getElementById("undo-form");

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
      else if (ev.key === "Escape") { ev.preventDefault(); undo(); }
      else if (/^[0-9]$/.test(ev.key) && document.activeElement !== input) {
        ev.preventDefault(); input.focus(); input.value += ev.key;
      }
    });
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

    function render() {
      tiles.forEach(function (t, i) {
        var r = selects[i].value;
        t.classList.toggle("ranked", r !== "");
        t.querySelector(".badge").textContent = r;
      });
    }
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
      if (/^[1-4]$/.test(ev.key)) { ev.preventDefault(); pick(Number(ev.key) - 1); }
      else if (ev.key === "Backspace") { ev.preventDefault(); reset(); }
      else if (ev.key === "Enter") { ev.preventDefault(); document.getElementById("submit").click(); }
      else if (ev.key === "h") { ev.preventDefault(); reset(); document.getElementById("skip-hard").click(); }
      else if (ev.key === "b") { ev.preventDefault(); reset(); document.getElementById("skip-bad").click(); }
      else if (ev.key === "Escape") { ev.preventDefault(); undo(); }
    });
    var sentRank = false;
    rankForm.addEventListener("submit", function (ev) {
      var skipping = ev.submitter && ev.submitter.name === "skip_reason";
      if (skipping) { reset(); }
      if (sentRank) { ev.preventDefault(); return; }
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
