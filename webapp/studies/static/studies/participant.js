// Copy buttons for codes, and the automatic way back to the panel (after declining, and after the last task).
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll("button.copy[data-copy]"), function (button) {
    button.addEventListener("click", function () {
      var source = document.querySelector(button.dataset.copy);
      var text = (source.tagName === "TEXTAREA" ? source.value : source.textContent).trim();
      var note = button.parentElement.querySelector(".copied");
      var said = function (msg) { if (note) { note.textContent = msg; } };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(function () { said("Copied."); }, function () { said("Select the code and copy it."); });
      } else { said("Select the code and copy it."); }
    });
  });
  var back = document.querySelector("a[data-auto-return]");
  if (back) {
    // data-after: whole seconds to wait, counted down on the page (the completion page);
    // without it, a short pause (the "declined" page).
    var left = parseInt(back.dataset.after || "", 10), shown = document.getElementById("return-countdown");
    if (isNaN(left)) { window.setTimeout(function () { window.location.assign(back.href); }, 1500); }
    else {
      var tick = window.setInterval(function () {
        left -= 1;
        if (shown) { shown.textContent = String(Math.max(left, 0)); }
        if (left <= 0) { window.clearInterval(tick); window.location.assign(back.href); }
      }, 1000);
      // A time limit the participant can turn off (WCAG 2.2.1): someone reading the page with
      // a screen reader, or copying the code, stays until they press the button above.
      var stay = document.getElementById("return-stay"), when = document.getElementById("return-when");
      if (stay) {
        stay.addEventListener("click", function () {
          window.clearInterval(tick);
          if (when) { when.textContent = "You stay here: the button above takes you back when you are ready."; }
          stay.parentNode.removeChild(stay);
          back.focus();
        });
      }
    }
  }
})();
