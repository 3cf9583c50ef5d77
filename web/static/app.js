// Live overview: the server pushes the rendered overview body over
// server-sent events whenever the agent's status changes.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  const conn = document.getElementById("conn");
  const es = new EventSource(live.dataset.events);
  es.addEventListener("overview", function (ev) {
    live.innerHTML = ev.data;
    if (conn) conn.textContent = "live updates: connected (update " + ev.lastEventId + ")";
  });
  es.onerror = function () {
    if (conn) conn.textContent = "live updates: reconnecting…";
  };
})();
