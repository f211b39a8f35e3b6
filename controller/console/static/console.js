// Refreshes every element with data-refresh="URL" by fetching that fragment every few
// seconds: the page stays where it is (no reload), and a failed fetch is retried later.
// The create and edit forms' offers (data-offers) follow the zone and billing mode typed;
// a filter form marked data-autosubmit is sent when one of its choices changes.
(function () {
  "use strict";
  var PERIOD_MS = 2000;
  function refresh(el) {
    if (document.hidden) return;
    var url = el.getAttribute("data-refresh");
    fetch(url, {
      credentials: "same-origin",
      headers: { "X-Console-Fragment": "1" },
      cache: "no-store",
    }).then(function (r) {
      if (r.status === 401) { window.location.reload(); return null; }
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (html === null || html === undefined || el.getAttribute("data-refresh") !== url) return;
      if (el.innerHTML !== html) el.innerHTML = html;
    }).catch(function () {});
  }
  function offers(panel) {
    var form = panel.closest("form");
    var zone = form.querySelector("[name=zone]");
    var timer = null;
    function follow() {
      var mode = form.querySelector("[name=billing_mode]:checked");
      var url = panel.getAttribute("data-offers") + "?zone=" + encodeURIComponent(zone.value.trim()) +
        "&billing_mode=" + encodeURIComponent(mode ? mode.value : "");
      if (url === panel.getAttribute("data-refresh")) return;
      panel.setAttribute("data-refresh", url);
      refresh(panel);
    }
    zone.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(follow, 300); });
    zone.addEventListener("change", follow);
    form.querySelectorAll("[name=billing_mode]").forEach(function (r) { r.addEventListener("change", follow); });
    panel.addEventListener("click", function (e) {
      var use = e.target.closest("[data-use-type]");
      if (!use) return;
      var input = form.querySelector("[name=instance_type]");
      input.value = use.getAttribute("data-use-type");
      input.focus();
    });
  }
  function start() {
    document.querySelectorAll("[data-offers]").forEach(offers);
    document.querySelectorAll("form[data-autosubmit] select").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });
    var els = document.querySelectorAll("[data-refresh]");
    if (!els.length) return;
    setInterval(function () { els.forEach(refresh); }, PERIOD_MS);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
