// corelab pages: a few enhancements on top of htmx. Every page and form works without this file.
(function () {
  "use strict";
  var opener = null;
  // Remember what opened a dialog, to give focus back when it closes.
  document.addEventListener("htmx:beforeRequest", function () {
    opener = document.activeElement;
  });
  // A signing dialog loaded by htmx opens as a modal with focus on its first field.
  document.addEventListener("htmx:afterSwap", function (e) {
    var dialog = e.detail.target.querySelector("dialog");
    if (!dialog || dialog.open) return;
    dialog.addEventListener("close", function () {
      dialog.remove();
      if (opener && document.body.contains(opener)) opener.focus();
    });
    dialog.showModal();
    var first = dialog.querySelector("input:not([type=hidden]), select, textarea");
    if (first) first.focus();
  });
  // A session that ended while a fragment loaded: htmx sends us to the login page.
  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail.xhr;
    if (xhr && xhr.status >= 400 && !xhr.getResponseHeader("HX-Redirect")) {
      var slot = e.detail.target;
      if (slot) {
        var p = document.createElement("p");
        p.className = "problem";
        p.setAttribute("role", "alert");
        p.textContent = "This part could not be loaded (error " + xhr.status + "). Reload the page.";
        slot.replaceChildren(p);
      }
    }
  });
})();
