// Live progress for a blast's page: polls the blast's status JSON every 2 s while it is
// preparing or sending, and updates the bar, the counts and the status.
//
// Markup: <section id="blast-progress" data-status-url="..."> holding <progress id="blast-bar">,
// <p id="blast-summary"> and one <strong data-count="STATUS"> per message status; the status
// badge is #blast-status and its reason #blast-reason. Without JavaScript the page refreshes
// itself (a <noscript> meta refresh). When the blast stops running (done, paused, canceled) the
// page reloads once to show the actions that now apply.
(function () {
  "use strict";

  var section = document.getElementById("blast-progress");
  if (!section || !section.dataset.statusUrl) {
    return;
  }
  var url = section.dataset.statusUrl;
  var bar = document.getElementById("blast-bar");
  var summary = document.getElementById("blast-summary");
  var badge = document.getElementById("blast-status");
  var reason = document.getElementById("blast-reason");
  var INTERVAL = 2000;
  var delay = INTERVAL;

  function number(n) {
    return Number(n).toLocaleString("en-US");
  }

  function show(state) {
    var counts = state.counts;
    var cells = section.querySelectorAll("[data-count]");
    for (var i = 0; i < cells.length; i++) {
      var key = cells[i].getAttribute("data-count");
      if (key in counts) {
        cells[i].textContent = number(counts[key]);
      }
    }
    if (bar) {
      bar.value = counts.percent;
      bar.textContent = counts.percent + "%";
    }
    if (summary) {
      summary.textContent = state.status === "preparing" && !counts.total
        ? "Preparing the audience…"
        : number(counts.processed) + " of " + number(counts.total) + " messages handled (" +
          counts.percent + "%).";
    }
    if (badge) {
      badge.textContent = state.status;
      badge.className = "badge badge-" + state.status;
    }
    if (reason) {
      reason.textContent = state.status_reason || "";
      reason.hidden = !state.status_reason;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (state) {
        show(state);
        if (!state.active) {
          window.location.reload();
          return;
        }
        delay = INTERVAL;
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        delay = Math.min(delay * 2, 30000); // the server is busy or restarting: back off
        window.setTimeout(poll, delay);
      });
  }

  window.setTimeout(poll, delay);
})();
