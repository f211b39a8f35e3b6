// Refreshes every element with data-refresh="URL" by fetching that fragment every few
// seconds: the page stays where it is (no reload), and a failed fetch is retried later.
(function () {
  "use strict";
  var PERIOD_MS = 2000;
  function refresh(el) {
    if (document.hidden) return;
    fetch(el.getAttribute("data-refresh"), {
      credentials: "same-origin",
      headers: { "X-Console-Fragment": "1" },
      cache: "no-store",
    }).then(function (r) {
      if (r.status === 401) { window.location.reload(); return null; }
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (html !== null && html !== undefined && el.innerHTML !== html) el.innerHTML = html;
    }).catch(function () {});
  }
  function start() {
    var els = document.querySelectorAll("[data-refresh]");
    if (!els.length) return;
    setInterval(function () { els.forEach(refresh); }, PERIOD_MS);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
